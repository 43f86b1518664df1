"""Published comparisons of teachers for one fixed student, set beside what each law predicts.

``data/reference/teacher_size_evidence.csv`` holds the observations (MiniMA's
3B student from LLaMA2-7B/13B/70B, MiniMoE's BERT-base vs BERT-large table,
Minitron's 4B student, TAKD's assistant chains). For every comparison (one
study, student and metric, two or more teachers) each law names the teacher
it expects to do best among those tried:

* Zhang et al. (T* = 2.5·S, total sizes): the teacher closest to 2.5·S on a log scale.
* Busbridge et al. (published constants): the teacher whose predicted student loss is lowest, with the
  teacher's loss from the supervised law at its real pretraining tokens and the student's distillation
  tokens; it cannot say where either is unknown, and when the predicted losses lie within the tolerance
  the optimum is too shallow to pick one.

Verdicts: agrees, disagrees, cannot say (and why). The csv module reads the table: no pandas.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict

from pydantic import BaseModel, ConfigDict

from capgap.recommender.near_miss import DEFAULT_TOLERANCE, check_tolerance
from capgap.core.resources import data_path
from capgap.recommender.size_convert import convert_size
from capgap.sizes.units import format_size

EVIDENCE_FILE = ("reference", "teacher_size_evidence.csv")
ZHANG_RATIO = 2.5
# Pretraining tokens of the teachers, where published: Llama 2 (Touvron et al., arXiv 2307.09288: 2T tokens
# for every size); Nemotron-4 15B (Parmar et al., arXiv 2402.16819: 8T tokens). Minitron-8B is itself
# pruned and distilled, so the supervised law gives no loss for it.
TEACHER_TRAINING_TOKENS = {"LLaMA2-7B": 2e12, "LLaMA2-13B": 2e12, "LLaMA2-70B": 2e12, "Nemotron-4-15B": 8e12}


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)
    law: str
    predicted: str | None  # the teacher the law expects to do best, among those tried
    verdict: str  # agrees, disagrees, cannot say
    why: str


class Comparison(BaseModel):
    """One study's teachers for one student and metric, what was observed, what each law says."""

    model_config = ConfigDict(frozen=True)
    study: str
    student: str
    student_params: float | None
    student_init: str
    student_kind: str = "dense"  # moe: MiniMoE's mixture-of-experts student (its size counts every expert)
    metric: str
    teachers: list[str]
    observed_best: str
    quality: str  # primary or seed
    source: str
    verdicts: list[Verdict]


def _float(text: str) -> float | None:
    return float(text) if text.strip() else None


def _zhang(rows: list[dict[str, str]], observed: str) -> Verdict:
    student = _float(rows[0]["student_params"])
    sizes = [_float(r["teacher_params"]) for r in rows]
    if student is None or None in sizes:
        return Verdict(law="zhang2023", predicted=None, verdict="cannot say", why="sizes are not parameter counts")
    target = ZHANG_RATIO * student
    best = min(rows, key=lambda r: abs(math.log(float(r["teacher_params"]) / target)))["teacher"]
    moe = " (the law is for dense students: this MoE student taken at its total size)" if _is_moe(rows[0]) else ""
    return Verdict(law="zhang2023", predicted=best, verdict="agrees" if best == observed else "disagrees",
                   why=f"T* = 2.5·S = {format_size(target)}; closest tried on a log scale: {best}{moe}")


def _is_moe(row: dict[str, str]) -> bool:
    """Whether a table row's student is a mixture of experts (MiniMoE's rows: student_init 'moe')."""
    return row["student_init"].strip().lower() == "moe"


def _busbridge(rows: list[dict[str, str]], observed: str, tolerance: float) -> Verdict:
    from capgap.laws.dsl import PUBLISHED, student_loss, supervised_loss

    student, tokens = _float(rows[0]["student_params"]), _float(rows[0]["distill_tokens"])
    unknown = [r["teacher"] for r in rows if r["teacher"] not in TEACHER_TRAINING_TOKENS or not r["teacher_params"]]
    if student is None or tokens is None or unknown:
        why = ("sizes are not parameter counts" if student is None else "student distillation tokens unknown"
               if tokens is None else f"pretraining tokens unknown for {', '.join(unknown)}")
        return Verdict(law="busbridge2025", predicted=None, verdict="cannot say", why=why)
    s = convert_size(int(student), "total", "nonembed").params
    losses = {}
    for r in rows:
        teacher = convert_size(int(float(r["teacher_params"])), "total", "nonembed").params
        teacher_loss = supervised_loss(PUBLISHED, teacher, TEACHER_TRAINING_TOKENS[r["teacher"]])
        losses[r["teacher"]] = float(student_loss(PUBLISHED, s, tokens, teacher_loss))
    best = min(losses, key=losses.get)
    spread = max(losses.values()) - min(losses.values())
    text = ", ".join(f"{name} {value:.3f}" for name, value in losses.items())
    if spread < tolerance:
        return Verdict(law="busbridge2025", predicted=best, verdict="cannot say",
                       why=f"predicted student losses within {spread:.3f} nats ({text}): too shallow to pick one")
    return Verdict(law="busbridge2025", predicted=best, verdict="agrees" if best == observed else "disagrees",
                   why=f"predicted student loss {text}")


def evidence(tolerance: float = DEFAULT_TOLERANCE) -> list[Comparison]:
    """Every comparison in the shipped evidence table with each law's verdict."""
    tolerance = check_tolerance(tolerance)  # as recommend refuses it
    path = data_path(*EVIDENCE_FILE)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    groups: dict[tuple[str, str, str], list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        groups[(row["study"], row["student"], row["metric"])].append(row)
    found = []
    for (study, student, metric), members in groups.items():
        if len(members) < 2:
            continue
        best = [r["teacher"] for r in members if r["best_in_study"].strip().lower() == "true"]
        observed = best[0] if best else max(members, key=lambda r: _float(r["value"]) or -math.inf)["teacher"]
        found.append(Comparison(
            study=study, student=student, student_params=_float(members[0]["student_params"]),
            student_init=members[0]["student_init"], student_kind="moe" if _is_moe(members[0]) else "dense",
            metric=metric, teachers=[r["teacher"] for r in members],
            observed_best=observed, quality=members[0]["quality"], source=members[0]["source"],
            verdicts=[_zhang(members, observed), _busbridge(members, observed, tolerance)]))
    return found
