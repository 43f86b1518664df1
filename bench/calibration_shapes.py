"""Calibration designs on shapes nobody planted by hand (issue 19, item 9), for bench/fit_calibration.py.

* **Published law**: curves from Busbridge et al.'s distillation scaling law
  (capgap.laws.dsl_synthetic.dsl_ladder_runs): scratch students of 150M, 300M,
  600M and 1B non-embedding parameters, teachers trained on 20 tokens/param
  at 1x, 2x or 4x the student doubling up to 256x, distilled on 20 or 320
  tokens/param, two seeds per pair, log-normal noise 0.002, with and without
  ``teacher_loss``; fitted on non-embedding sizes. The truth is the law's own
  optimum (``dsl_true_optimum``: 81x for 1B and 104x for 150M at 20
  tokens/param; 8.5x and 15.5x at 320).
* **Beyond the ladder**: the same law on ladders that do not bracket the
  optimum (16-256x at 320 tokens/param: the smallest teacher is best;
  1-32x at 20: the largest is). The right answer is a one-sided bound.
* **Few teachers**: 3, 4 or 5 teachers per student, drawn per data set from
  capgap.runs.synthetic's ladder (asymmetric planted curves) or from the doubling
  ladder of the published law, so that they bracket the optimum.
* **One student and four students**.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from capgap.laws.dsl_synthetic import DOUBLING_MULTIPLES, dsl_ladder_runs, dsl_true_optimum
from capgap.runs.records import RunRecord
from capgap.runs.synthetic import synthetic_runs

DSL_STUDENTS = (150_000_000, 300_000_000, 600_000_000, 1_000_000_000)  # non-embedding
DSL_QUERIES = (300_000_000, 1_000_000_000)
SYNTHETIC_STUDENTS = (20_000_000, 45_000_000, 100_000_000, 220_000_000, 500_000_000)
PER_STUDENT = (1.25, 1.6, 2.0, 2.5, 3.2, 4.0, 5.0, 6.4)
ASYMMETRIC = (1.0, 3.0)  # left/right curvature ratio, drawn uniformly per data set
DSL_NOISE = 0.002


@dataclass(frozen=True)
class DataSet:
    """One data set: its runs, the true optimal teacher of each query student, and each query student's ladder."""

    runs: list[RunRecord]
    truths: dict[float, float]
    ladders: dict[float, tuple[float, float]]


@dataclass(frozen=True)
class Design:
    """How to make a design's data sets (``make(index)``), what to fit, and its targets.

    ``one_sided``: the truth lies beyond every ladder, so the right answer is a
    bound holding the truth, not an interval (scored by the one-sided share).
    """

    law: str
    make: Callable[[int], DataSet]
    queries: tuple[float, ...]
    tokens_per_param: float = 20.0
    size_measure: str = "total"
    bias_target: float = 0.10
    coverage: tuple[float, float] = (0.80, 0.95)
    one_sided: bool = False


@lru_cache(maxsize=None)
def dsl_truth(student: float, tokens_per_param: float) -> float:
    return dsl_true_optimum(student, tokens_per_param * student)


def _dsl_data(index: int, multiples: Sequence[float], tokens_per_param: float, with_teacher_loss: bool,
              students: Sequence[float] = DSL_STUDENTS, queries: Sequence[float] = DSL_QUERIES) -> DataSet:
    runs = dsl_ladder_runs(students, multiples, tokens_per_param=(tokens_per_param,), noise=DSL_NOISE,
                           teacher_noise=DSL_NOISE, repeats=2, seed=200_000 + index,
                           with_teacher_loss=with_teacher_loss)
    return DataSet(runs, {s: dsl_truth(s, tokens_per_param) for s in queries},
                   {s: (min(multiples) * s, max(multiples) * s) for s in queries})


def _bracketing_subset(rng: np.random.Generator, ladder: Sequence[float], k: int, below: float,
                       above: float) -> tuple[float, ...]:
    """k rungs of ``ladder`` drawn at random with at least one at or below ``below`` and one at or above ``above``."""
    while True:
        chosen = tuple(sorted(rng.choice(ladder, size=k, replace=False)))
        if chosen[0] <= below and chosen[-1] >= above:
            return tuple(float(m) for m in chosen)


def _few_dsl_data(index: int, k: int, tokens_per_param: float) -> DataSet:
    rng = np.random.default_rng([index, 19, k])
    ratios = [dsl_truth(s, tokens_per_param) / s for s in DSL_STUDENTS]
    multiples = _bracketing_subset(rng, DOUBLING_MULTIPLES, k, min(ratios), max(ratios))
    return _dsl_data(index, multiples, tokens_per_param, True)


def _synthetic_data(index: int, ratio: float, multiples: Sequence[float] | None = None, k: int | None = None,
                    students: Sequence[int] = SYNTHETIC_STUDENTS, queries: Sequence[float] = (100_000_000,
                                                                                              500_000_000),
                    **design) -> DataSet:
    """capgap.runs.synthetic's planted curves (asymmetry 1-3 drawn per data set), optionally on k rungs drawn per data set."""
    rng = np.random.default_rng([index, 7])
    asymmetry = float(rng.uniform(*ASYMMETRIC))
    ladder = tuple(multiples or PER_STUDENT)
    if k is not None:
        ladder = _bracketing_subset(np.random.default_rng([index, 19, k]), ladder, k, ratio, ratio)
    runs = synthetic_runs(ratio=ratio, students=students, multiples=ladder, asymmetry=asymmetry,
                          seed=100_000 + index, with_teacher_loss=False, noise=design.pop("noise", 0.005), **design)
    return DataSet(runs, {s: ratio * s for s in queries}, {s: (min(ladder) * s, max(ladder) * s) for s in queries})


def _published(start: float, tokens_per_param: float, law: str, with_teacher_loss: bool) -> Design:
    multiples = tuple(m for m in DOUBLING_MULTIPLES if m >= start)
    return Design(law, lambda i: _dsl_data(i, multiples, tokens_per_param, with_teacher_loss), DSL_QUERIES,
                  tokens_per_param, "nonembed")


def _published_designs() -> dict[str, Design]:
    designs = {}
    for law in ("power", "auto"):
        for tpp in (20.0, 320.0):
            for start in (1.0, 2.0, 4.0):
                for with_loss in (True, False):
                    name = (f"published law, {tpp:.0f} tok/param, {start:.0f}-256x, "
                            f"{'with' if with_loss else 'no'} teacher_loss, {law}")
                    designs[name] = _published(start, tpp, law, with_loss)
    return designs


SHAPE_DESIGNS: dict[str, Design] = {
    **_published_designs(),
    "published law beyond the ladder: 320 tok/param, 16-256x (smallest best)": Design(
        "power", lambda i: _dsl_data(i, DOUBLING_MULTIPLES[4:], 320.0, True), DSL_QUERIES, 320.0, "nonembed",
        one_sided=True),
    "published law beyond the ladder: 20 tok/param, 1-32x (largest best)": Design(
        "power", lambda i: _dsl_data(i, DOUBLING_MULTIPLES[:6], 20.0, True), DSL_QUERIES, 20.0, "nonembed",
        one_sided=True),
    **{f"few teachers: {k} per student, asymmetric 1-3": Design(
        "ratio", (lambda k: lambda i: _synthetic_data(i, 2.7, k=k))(k), (100_000_000, 500_000_000))
       for k in (3, 4, 5)},
    **{f"few teachers: {k} per student, published law, 320 tok/param": Design(
        "power", (lambda k: lambda i: _few_dsl_data(i, k, 320.0))(k), DSL_QUERIES, 320.0, "nonembed")
       for k in (3, 4, 5)},
    "one student (100M), 8 teachers, asymmetric 1-3": Design(
        "ratio", lambda i: _synthetic_data(i, 2.7, students=(100_000_000,), queries=(100_000_000,)),
        (100_000_000,)),
    "one student (100M), 4 teachers, asymmetric 1-3": Design(
        "ratio", lambda i: _synthetic_data(i, 2.7, k=4, students=(100_000_000,), queries=(100_000_000,)),
        (100_000_000,)),
    "one student (1B), published law, 320 tok/param, 2-256x": Design(
        "ratio", lambda i: _dsl_data(i, DOUBLING_MULTIPLES[1:], 320.0, True, students=(1_000_000_000,),
                                     queries=(1_000_000_000,)), (1_000_000_000,), 320.0, "nonembed"),
    "four students (20M-220M), asymmetric 1-3": Design(
        "ratio", lambda i: _synthetic_data(i, 2.7, students=SYNTHETIC_STUDENTS[:4],
                                           queries=(45_000_000, 220_000_000)), (45_000_000, 220_000_000)),
}

# --quick: one design of each kind.
QUICK = (
    "published law, 20 tok/param, 2-256x, with teacher_loss, power",
    "published law, 320 tok/param, 4-256x, with teacher_loss, auto",
    "published law beyond the ladder: 320 tok/param, 16-256x (smallest best)",
    "few teachers: 4 per student, asymmetric 1-3",
    "few teachers: 3 per student, published law, 320 tok/param",
    "one student (100M), 8 teachers, asymmetric 1-3",
)
