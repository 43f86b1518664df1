"""Students of a target size made from a teacher: pruned from it, or fresh with the same shape.

Both inits share one architecture for a given (teacher, target): the shape the
pruner plans (teacher's depth, fewer heads, possibly smaller ones, hidden channels and
MLP neurons), so a pruned and a scratch student differ only in their weights.
An MoE student (``kind='moe'``) is that dense student with its MLPs made experts
(capgap.measure.moe); its target size is its active size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from capgap.core.errors import InputError
from capgap.measure import moe, prune
from capgap.measure.models import new_model

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

INITS = ("pruned", "scratch")


def student_config(teacher: "PretrainedConfig", target_params: int) -> "PretrainedConfig":
    """The teacher's config resized to the shape the pruner plans for ``target_params``.

    Raises InputError when no student of that size can be cut from the teacher,
    so a sweep can check every pair before it runs any (the model is built on
    the meta device: no memory, no weights).
    """
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(teacher)
    plan = prune.plan_shape(skeleton, target_params)
    return type(teacher).from_dict(prune.student_config_dict(skeleton, plan))


def scratch_student(teacher: "PreTrainedModel", target_params: int, seed: int) -> "PreTrainedModel":
    """A freshly initialised model with the pruned student's architecture."""
    return new_model(student_config(teacher.config, target_params), seed)


def make_student(teacher: "PreTrainedModel", target_params: int, init: str, *, seed: int,
                 calib_batches: Sequence[torch.Tensor], importance: Any = None, kind: str = "dense",
                 experts: int | None = None) -> "PreTrainedModel":
    """A student of about ``target_params`` parameters: ``init`` 'pruned' or 'scratch'.

    ``kind`` 'moe': the same dense student with every MLP made ``experts`` experts
    (capgap.measure.moe); ``target_params`` is then its active size.
    """
    experts = moe.check_experts(kind, experts)
    if init == "pruned":
        if kind == "moe" and importance is None:  # the experts are cut by the same scores as the student
            importance = prune.compute_importance(teacher, calib_batches)
        torch.manual_seed(seed)
        student = prune.prune_to_params(teacher, target_params, calib_batches, importance=importance)
        if kind == "moe":
            moe.to_moe(student, experts, seed=seed, teacher=teacher, neuron_scores=importance.neurons)
        return student
    if init == "scratch":
        student = scratch_student(teacher, target_params, seed)
        return moe.to_moe(student, experts, seed=seed) if kind == "moe" else student
    raise InputError(f"student init {init!r} is not known; accepted: {', '.join(INITS)}, both")
