"""Run records: one distillation run, its configuration and what it measured.

Units: sizes are parameter counts (int), tokens are distillation tokens (int),
losses are nats per token, compute is FLOPs (float).
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from capgap.core.errors import InputError

Direction = Literal["lower", "higher"]
StudentKind = Literal["dense", "moe"]

# Suffix -> direction. Loss and perplexity fall as quality rises; accuracy rises.
_DIRECTION_BY_SUFFIX: dict[str, Direction] = {
    "loss": "lower", "ppl": "lower", "perplexity": "lower", "bpb": "lower", "bpc": "lower",
    "acc": "higher", "accuracy": "higher", "em": "higher", "f1": "higher", "score": "higher",
    "pass1": "higher",
    # Outside language models: error rates and regression errors fall as quality rises.
    "err": "lower", "error": "lower", "wer": "lower", "cer": "lower", "mse": "lower", "rmse": "lower",
    "mae": "lower",
}

# Where sweeps before RunRecord.teacher_tokens kept the teacher's pretraining tokens.
LEGACY_TEACHER_TOKENS = "teacher_pretrain_tokens"

# Fields of the configuration that identify a run (the run id hashes them).
CONFIG_FIELDS = ("family", "student_params", "teacher_params", "tokens", "student_init",
                 "alpha", "temperature", "seed", "source")


def metric_direction(name: str) -> Direction | None:
    """'lower' or 'higher' is better for a known metric name, None when unknown.

    Known by suffix: ``*_loss``, ``*_ppl``, ``*_err``, ``*_error`` lower; ``*_acc``
    higher (and a few others: perplexity, bpb, wer, mse, rmse, mae; accuracy, em, f1).
    """
    key = name.lower().rsplit("_", 1)[-1]
    return _DIRECTION_BY_SUFFIX.get(key)


def unknown_direction_warning(name: str) -> str:
    """The warning for a metric whose direction capgap cannot place by name: lower is assumed; the flags say."""
    return (f"direction of metric {name!r} is unknown; taking lower as better "
            "(say --higher-is-better or --lower-is-better)")


def run_id_for(config: dict[str, Any]) -> str:
    """A stable id from a run's configuration: 16 hex digits of its SHA-256."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class RunRecord(BaseModel):
    """One distillation run (immutable once made)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str = ""
    family: str = "unknown"
    student_params: PositiveInt
    teacher_params: PositiveInt
    student_params_nonembed: PositiveInt | None = None
    teacher_params_nonembed: PositiveInt | None = None
    tokens: PositiveInt | None = None
    student_init: str = "unknown"  # pruned | scratch | other
    student_kind: StudentKind = "dense"  # moe: MLPs made top-1 experts (records before this field are dense)
    experts: PositiveInt | None = None  # experts per MoE layer; None for a dense student
    student_active_params: PositiveInt | None = None  # parameters used per token (student_params: all of them)
    alpha: float | None = None  # weight of CE(data); 1 - alpha weighs the KD term
    temperature: float | None = None
    seed: int | None = None
    metrics: dict[str, float]
    teacher_loss: float | None = None  # teacher's held-out loss, nats/token
    teacher_tokens: PositiveInt | None = None  # the teacher's own pretraining tokens (the dsl law needs them)
    flops: float | None = None
    source: str = "user"  # who measured it: capgap, a paper, a user
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("student_params", "teacher_params", "student_params_nonembed",
                     "teacher_params_nonembed", "tokens", "teacher_tokens", "student_active_params", "experts",
                     mode="before")
    @classmethod
    def _integral(cls, value: Any) -> Any:
        # Accept 1.3e9 written as a float, refuse 1.5 parameters.
        if isinstance(value, float):
            if not math.isfinite(value) or value != int(value):
                raise ValueError(f"must be a whole positive number, got {value!r}")
            return int(value)
        return value

    @field_validator("metrics")
    @classmethod
    def _finite_metrics(cls, metrics: dict[str, float]) -> dict[str, float]:
        if not metrics:
            raise ValueError("a run needs at least one metric (e.g. eval_loss)")
        for name, value in metrics.items():
            if not math.isfinite(value):
                raise ValueError(f"metric {name} is {value}; metrics must be finite")
            if name in RunRecord.model_fields:
                raise ValueError(f"metric name {name!r} clashes with a record field")
        return metrics

    @field_validator("teacher_loss", "flops", "alpha", "temperature")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"must be finite, got {value}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _teacher_tokens_from_extra(cls, data: Any) -> Any:
        # Sweeps before teacher_tokens was a field wrote it as extra.teacher_pretrain_tokens.
        if isinstance(data, dict) and isinstance(data.get("extra"), dict) and \
                LEGACY_TEACHER_TOKENS in data["extra"] and data.get("teacher_tokens") is None:
            extra = dict(data["extra"])
            data = {**data, "teacher_tokens": extra.pop(LEGACY_TEACHER_TOKENS), "extra": extra}
        return data

    @model_validator(mode="after")
    def _kind_and_active(self) -> "RunRecord":
        # A dense student uses all its parameters per token; an MoE one says how many experts it has.
        if self.student_kind == "dense":
            if self.experts is not None:
                raise ValueError(f"experts {self.experts} given for a dense student; set student_kind to moe")
            if self.student_active_params not in (None, self.student_params):
                raise ValueError(f"student_active_params {self.student_active_params} differs from student_params "
                                 f"{self.student_params} for a dense student; set student_kind to moe")
        elif self.experts is None or self.experts < 2:
            raise ValueError("an moe student needs experts (2 or more per MoE layer)")
        elif self.student_active_params is None or self.student_active_params > self.student_params:
            raise ValueError("an moe student needs student_active_params (parameters used per token), "
                             "at most student_params (all of them)")
        if self.student_active_params is None:
            object.__setattr__(self, "student_active_params", self.student_params)
        return self

    @model_validator(mode="after")
    def _derive_run_id(self) -> "RunRecord":
        if not self.run_id:
            object.__setattr__(self, "run_id", run_id_for(self.config()))
        return self

    def config(self) -> dict[str, Any]:
        """The fields that identify the run (what the run id hashes).

        ``teacher_tokens`` only when known, the student kind and experts only for MoE students,
        so ids of records that lack them stay what they were.
        """
        config = {name: getattr(self, name) for name in CONFIG_FIELDS}
        if self.student_kind != "dense":  # dense records keep the ids they had before the kind existed
            config.update(student_kind=self.student_kind, experts=self.experts)
        if self.teacher_tokens is not None:
            config["teacher_tokens"] = self.teacher_tokens
        return config

    def metric(self, name: str) -> float | None:
        return self.metrics.get(name)

    def teacher_token_count(self) -> float | None:
        """The teacher's pretraining tokens: the field, or an older store's ``extra['teacher_tokens']`` (a size
        such as "2B"); None where neither is given."""
        if self.teacher_tokens is not None:
            return float(self.teacher_tokens)
        given = self.extra.get("teacher_tokens")
        if given in (None, ""):
            return None
        from capgap.sizes.units import parse_size

        return float(parse_size(given, what="extra.teacher_tokens"))

    def size(self, which: Literal["student", "teacher"], measure: str = "total") -> int | None:
        """The student's or teacher's size by measure, 'total' or 'nonembed', as the laws place it.

        An MoE student is placed by what one token uses (its active parameters: the dense student it
        was cut as, plus the routers); the experts it does not use are in ``student_params`` only.
        Its total size changes with the teacher it was pruned from, its active size does not.
        """
        if which == "student" and self.student_kind == "moe":
            inactive = self.student_params - (self.student_active_params or self.student_params)
            if measure == "nonembed":  # the idle experts are all non-embedding parameters
                return None if self.student_params_nonembed is None else self.student_params_nonembed - inactive
            return self.student_active_params
        if measure == "nonembed":
            return getattr(self, f"{which}_params_nonembed")
        return getattr(self, f"{which}_params")


class FailedRun(BaseModel):
    """A run that `capgap measure` started but could not finish (a non-finite loss, an error in training).

    The store keeps it beside the run records, so a rerun knows it was tried; every reader
    skips it (and counts it in a warning), and `capgap measure --retry-failed` runs it again.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: Literal["failed"] = "failed"
    run_id: str
    reason: str  # one line: what went wrong, where (e.g. 'loss is nan at step 12 of 40')
    config: dict[str, Any]  # what the run was: teacher, student target, init, recipe
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    extra: dict[str, Any] = Field(default_factory=dict)


def record_from_dict(data: dict[str, Any], *, where: str) -> RunRecord:
    """Validate a dict into a RunRecord, turning errors into one InputError line."""
    return _validated(RunRecord, data, where=where)


def _validated(model: type[BaseModel], data: dict[str, Any], *, where: str, what: str = "") -> Any:
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        from capgap.runs.field_messages import RUN_FIELDS, field_message

        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        message = field_message(exc.errors()[0], RUN_FIELDS, list(model.model_fields))
        raise InputError(f"{what}{message}{more}", where=where) from None


def stored_from_dict(data: dict[str, Any], *, where: str) -> RunRecord | FailedRun:
    """A store line's object: a failed run (``"status": "failed"``) or a run record, as one InputError line."""
    if data.get("status") == "failed":
        return _validated(FailedRun, data, where=where, what="failed run: ")
    return record_from_dict(data, where=where)


def ids_hash(run_ids: "Iterable[str]") -> str:
    """Content hash of a set of runs: SHA-256 of their sorted run ids (16 hex digits)."""
    return hashlib.sha256("\n".join(sorted(run_ids)).encode()).hexdigest()[:16]


def runs_hash(runs: "Iterable[RunRecord]") -> str:
    """The hash of the runs a law comes from (``ids_hash`` of their run ids)."""
    return ids_hash(r.run_id for r in runs)
