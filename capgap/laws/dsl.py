"""The `dsl` family: the distillation scaling law of Busbridge et al. (arXiv 2502.08606).

A student's loss is predicted from its teacher's loss L_T, its non-embedding
size N_S and its distillation tokens D_S (nats per token throughout):

    L(N, D)            = E + (A / N**alpha + B / D**beta)**gamma                     (Eq. 1)
    L_S(N_S, D_S, L_T) = L_T + L_T**-c0 * (1 + (L_T / (L(N_S, D_S) * d1))**(1/f1))**(-c1*f1)
                             * (A2 / N_S**alpha2 + B2 / D_S**beta2)**gamma2         (Eq. 8)

Teacher size enters only through L_T. The best teacher of a student is the
teacher loss that minimises L_S; the supervised law L(N, D_T), fitted on the
teachers' own (size, tokens, loss), turns that loss into a teacher size.
Unlike the ratio-style families, this one predicts the student's loss.

This module is the law: its equations, the published constants and the face
that reads a law file. Fitting it to runs is ``capgap.fit.dsl_fit``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from capgap.core.errors import InputError
from capgap.laws.base import Censoring, FitOptions, LawFile, TeacherEstimate, quantile_interval, register_law
from capgap.runs.records import RunRecord
from capgap.sizes.units import TOKENS_PER_PARAM

SUPERVISED = ("E", "A", "B", "alpha", "beta", "gamma")
DISTILLATION = ("A2", "B2", "alpha2", "beta2", "gamma2", "c0", "c1", "f1", "d1")

PUBLISHED_SOURCE = ("Busbridge et al., Distillation Scaling Laws, arXiv 2502.08606 (ICML 2025), Eq. 1, Eq. 8 "
                    "and Table 6: fitted on 73 supervised and 697 distillation runs (C4 English, 32k vocabulary, "
                    "muP); sizes are non-embedding parameters")
PUBLISHED: dict[str, float] = {
    "E": 1.220, "A": 3355.0, "B": 18186.0, "alpha": 0.408, "beta": 0.431, "gamma": 0.452,
    "A2": 2243.0, "B2": 24181.0, "alpha2": 0.321, "beta2": 0.637, "gamma2": 0.764,
    "c0": 2.549, "c1": 522.6, "f1": 0.090, "d1": 1.315,
}
TEACHER_LOSS_RANGE = (0.05, 20.0)  # nats/token: where the optimal teacher loss is searched

def supervised_loss(coef: Mapping[str, float], params: np.ndarray | float, tokens: np.ndarray | float) -> np.ndarray:
    """L(N, D) = E + (A/N^alpha + B/D^beta)^gamma, vectorised over N and D."""
    n, d = np.asarray(params, dtype=float), np.asarray(tokens, dtype=float)
    return coef["E"] + (coef["A"] / n ** coef["alpha"] + coef["B"] / d ** coef["beta"]) ** coef["gamma"]


def student_loss(coef: Mapping[str, float], student_params: np.ndarray | float, tokens: np.ndarray | float,
                 teacher_loss: np.ndarray | float) -> np.ndarray:
    """L_S(N_S, D_S, L_T): the distilled student's loss (Busbridge Eq. 8)."""
    n, d, lt = (np.asarray(v, dtype=float) for v in (student_params, tokens, teacher_loss))
    lsup = supervised_loss(coef, n, d)
    gap = np.exp(-coef["c1"] * coef["f1"] * np.logaddexp(0.0, np.log(lt / (lsup * coef["d1"])) / coef["f1"]))
    size = (coef["A2"] / n ** coef["alpha2"] + coef["B2"] / d ** coef["beta2"]) ** coef["gamma2"]
    return lt + lt ** -coef["c0"] * gap * size


def optimal_teacher_loss_of(coef: Mapping[str, float | np.ndarray], student_params: float,
                            tokens: float) -> np.ndarray:
    """The teacher loss L_T that minimises the student's predicted loss.

    Vectorised over coefficient arrays (e.g. bootstrap draws): a log-spaced
    grid of L_T brackets the minimum, golden-section search refines it.
    """
    coef = {name: np.asarray(value, dtype=float)[..., None] for name, value in coef.items()}
    # Beyond L_T = d1 * L_sup the student just matches its teacher, so the optimum lies below that.
    high = np.minimum(TEACHER_LOSS_RANGE[1], 2.0 * coef["d1"] * supervised_loss(coef, student_params, tokens))
    low = TEACHER_LOSS_RANGE[0]
    grid = low * (high / low) ** np.linspace(0.0, 1.0, 257)
    best = np.argmin(student_loss(coef, student_params, tokens, grid), axis=-1)[..., None]
    left = np.take_along_axis(grid, np.maximum(best - 1, 0), axis=-1)
    right = np.take_along_axis(grid, np.minimum(best + 1, grid.shape[-1] - 1), axis=-1)
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(60):  # shrinks the bracket by 0.618^60, far below any loss that matters
        inner_left, inner_right = right - ratio * (right - left), left + ratio * (right - left)
        go_left = student_loss(coef, student_params, tokens, inner_left) < student_loss(coef, student_params, tokens, inner_right)
        left, right = np.where(go_left, left, inner_left), np.where(go_left, inner_right, right)
    return ((left + right) / 2.0)[..., 0]


@dataclass(frozen=True)
class TeacherTokens:
    """How long teachers are trained: a common count, or a multiple of their size."""

    common: float | None = None
    per_param: float | None = None

    def at(self, teacher_params: float | np.ndarray) -> float | np.ndarray:
        return self.common if self.common is not None else self.per_param * teacher_params  # type: ignore[operator]


def teacher_size_for_loss(coef: Mapping[str, float | np.ndarray], teacher_loss: float | np.ndarray,
                          teacher_tokens: TeacherTokens) -> np.ndarray:
    """The teacher size N with L(N, D_T) = teacher_loss; inf where no size reaches it (vectorised)."""
    coef = {name: np.asarray(value, dtype=float) for name, value in coef.items()}
    loss = np.asarray(teacher_loss, dtype=float)
    if teacher_tokens.common is not None:
        # Closed form: A/N^alpha = (L - E)^(1/gamma) - B/D^beta.
        excess = np.maximum(loss - coef["E"], 0.0)
        size_term = excess ** (1.0 / coef["gamma"]) - coef["B"] / teacher_tokens.common ** coef["beta"]
        with np.errstate(divide="ignore", over="ignore"):  # a size beyond float range is no size: inf
            return np.where(size_term > 0, (coef["A"] / np.maximum(size_term, 1e-300)) ** (1.0 / coef["alpha"]), np.inf)

    # Tokens grow with size: L falls monotonically in N, so bisect in log N.
    def above(log_n: np.ndarray) -> np.ndarray:
        n = np.exp(log_n)
        return supervised_loss(coef, n, teacher_tokens.at(n)) > loss

    low, high = np.full(np.broadcast(loss, coef["E"]).shape, math.log(1e3)), np.full(np.broadcast(loss, coef["E"]).shape, math.log(1e16))
    unreachable = above(high)
    for _ in range(60):  # 60 halvings of a 30-nat bracket: far below a parameter
        middle = (low + high) / 2.0
        go_up = above(middle)
        low, high = np.where(go_up, middle, low), np.where(go_up, high, middle)
    return np.where(unreachable, np.inf, np.exp((low + high) / 2.0))


# -- the law family ------------------------------------------------------------
SATURATION_NATS = 1e-3  # a censored optimum: the size beyond which the student gains less than this


@register_law("dsl")
class DSLLaw:
    """Busbridge et al.'s distillation scaling law behind the common Law face.

    Sizes are in ``file.size_measure`` units (non-embedding wherever the runs
    allow); tokens default to 20 per student parameter.
    """

    name = "dsl"
    parameters = (*SUPERVISED, *DISTILLATION)  # 15: the most complex family in auto's one-standard-error rule

    @classmethod
    def auto_exclusion(cls, runs: Sequence[RunRecord], options: FitOptions) -> str | None:
        """Why auto cannot weigh this family on these runs (None: it can); what is missing, said plainly."""
        if options.direction != "lower":
            return (f"the dsl law models a loss (lower is better); {options.metric} is higher-is-better")
        with_metric = [r for r in runs if r.metric(options.metric) is not None]
        lacking = {what: sum(getattr(r, what) is None for r in with_metric) for what in ("teacher_loss", "tokens")}
        if lacking["teacher_loss"] == len(with_metric):
            lacking["teacher_loss"] = 0  # none measured: assumed from the supervised law (capgap.fit.dsl_fit)
        missing = [f"{count} of {len(with_metric)} runs lack {what}" for what, count in lacking.items() if count]
        if missing:
            return (f"the dsl law needs tokens on every run, and teacher_loss (the teacher's held-out loss, "
                    f"nats/token) on every run or on none: {' and '.join(missing)}")
        return None

    def __init__(self, file: LawFile) -> None:
        missing = [n for n in (*SUPERVISED, *DISTILLATION) if n not in file.coefficients]
        if missing:
            raise InputError(f"dsl law file lacks coefficient(s) {', '.join(missing)}; "
                             f"expected {', '.join((*SUPERVISED, *DISTILLATION))}")
        rule = file.teacher_tokens or {}
        if not (isinstance(rule, dict) and len(rule) == 1 and set(rule) <= {"common", "per_param"}):
            raise InputError("dsl law file needs teacher_tokens: {\"common\": D_T} or {\"per_param\": D_T/N_T}")
        self.file = file
        self.teacher_tokens = TeacherTokens(**{k: float(v) for k, v in rule.items()})
        draws = [s for s in file.samples if all(n in s for n in file.coefficients)]
        self._draws = {n: np.array([d[n] for d in draws]) for n in file.coefficients} if draws else None

    def _tokens(self, student_params: float, tokens: float | None) -> float:
        return float(tokens) if tokens is not None else TOKENS_PER_PARAM * float(student_params)

    def optimal_teacher_loss(self, student_params: float, tokens: float | None = None) -> float:
        """The teacher loss (nats/token) that minimises the student's predicted loss."""
        return float(optimal_teacher_loss_of(self.file.coefficients, float(student_params), self._tokens(student_params, tokens)))

    def predict_student_loss(self, student_params: float, teacher_loss: float, tokens: float | None = None) -> float:
        """The student's loss distilled from a teacher of this loss."""
        return float(student_loss(self.file.coefficients, student_params, self._tokens(student_params, tokens), teacher_loss))

    def teacher_loss(self, teacher_params: float) -> float:
        """A teacher's own loss from the supervised law at its training tokens."""
        return float(supervised_loss(self.file.coefficients, teacher_params, self.teacher_tokens.at(teacher_params)))

    def predict_metric(self, student_params: float, teacher_params: float, tokens: float | None = None) -> float | None:
        return self.predict_student_loss(student_params, self.teacher_loss(teacher_params), tokens)

    def optimal_teacher(self, student_params: float, tokens: float | None = None) -> TeacherEstimate:
        """The best teacher; a bound at the measured edge where the law's optimum needs a teacher loss outside
        the measured ones (an extrapolation), and no interval end beyond the measured teachers."""
        raw = self.law_optimum(student_params, tokens)
        diagnostics = self.file.diagnostics
        span, losses = diagnostics.teacher_range, diagnostics.teacher_loss_range
        if span is None or losses is None:
            return raw  # no measured range (a published law, a quick refit): the law's own answer
        side = self._outside(student_params, tokens)
        if side is not None:
            return TeacherEstimate(estimate=span[1] if side == "at_least" else span[0], level=raw.level, censored=side)
        if raw.censored is not None:
            return raw
        if diagnostics.no_interval:
            return TeacherEstimate(estimate=raw.estimate, level=raw.level)
        low = raw.low if raw.low is not None and raw.low >= span[0] else None
        high = raw.high if raw.high is not None and raw.high <= span[1] else None
        return TeacherEstimate(estimate=raw.estimate, low=low, high=high, level=raw.level)

    def _outside(self, student_params: float, tokens: float | None) -> Censoring | None:
        """'at_least' where the optimal teacher loss lies below every measured one, 'at_most' above; else None."""
        losses = self.file.diagnostics.teacher_loss_range
        if losses is None:
            return None
        best = self.optimal_teacher_loss(student_params, tokens)
        return "at_least" if best < losses[0] else "at_most" if best > losses[1] else None

    def extrapolation(self, student_params: float, tokens: float | None = None) -> str | None:
        """A sentence where the optimum of this student is an extrapolation beyond the measured teacher losses."""
        side = self._outside(student_params, tokens)
        if side is None:
            return None
        return extrapolation_text([(float(student_params), self._tokens(student_params, tokens))], self, side)

    def held_out_curve(self, runs: Sequence[RunRecord]) -> tuple[np.ndarray, np.ndarray]:
        """For auto's cross-validation (capgap.fit.law_fit): per run, the law's predicted loss from its teacher's
        measured loss, less the law's best for that student (>= 0), and whether the teacher is weaker than the
        optimal one (its loss above the optimal teacher loss)."""
        nonembed = self.file.size_measure == "nonembed"
        students = run_sizes(runs, "student", nonembed_lookup()) if nonembed else [r.size("student", "total") for r in runs]
        assumed = all(r.teacher_loss is None for r in runs)  # as the fit did: the supervised law's losses
        if any(s is None for s in students) or (not assumed and any(r.teacher_loss is None for r in runs)):
            raise InputError("the dsl law needs the student's size for every held-out run, and teacher_loss for "
                             "every one or for none")
        student = np.array(students, dtype=float)
        tokens = np.array([self._tokens(s, r.tokens) for s, r in zip(student, runs)])
        coef = self.file.coefficients
        if assumed:
            teachers = run_sizes(runs, "teacher", nonembed_lookup()) if nonembed else [r.size("teacher", "total") for r in runs]
            if any(t is None for t in teachers):
                raise InputError("the dsl law needs the teacher's size for every held-out run")
            # As the fit read them (an older store's extra['teacher_tokens'] too), else the law's own rule.
            teacher_tokens = [r.teacher_token_count() or self.teacher_tokens.at(t) for r, t in zip(runs, teachers)]
            teacher_loss = np.asarray(supervised_loss(coef, np.array(teachers, dtype=float),
                                                      np.array(teacher_tokens, dtype=float)), dtype=float)
        else:
            teacher_loss = np.array([r.teacher_loss for r in runs], dtype=float)
        best = np.array([float(optimal_teacher_loss_of(coef, s, d)) for s, d in zip(student, tokens)])
        rise = student_loss(coef, student, tokens, teacher_loss) - student_loss(coef, student, tokens, best)
        return np.maximum(rise, 0.0), teacher_loss > best

    def law_optimum(self, student_params: float, tokens: float | None = None) -> TeacherEstimate:
        """The law's own optimal teacher, however far beyond the measured teachers (the saturation size, censored
        'at_least', where no finite teacher is best)."""
        d_s = self._tokens(student_params, tokens)
        size = float(optimal_size(self.file.coefficients, float(student_params), d_s, self.teacher_tokens))
        level = self.file.level
        if not math.isfinite(size):
            # No finite teacher reaches the best teacher loss: larger is always better.
            bound = _saturation_size(self.file.coefficients, float(student_params), d_s, self.teacher_tokens)
            return TeacherEstimate(estimate=bound, level=level, censored="at_least")
        low = high = None
        if self._draws is not None:
            draws = optimal_size(self._draws, float(student_params), d_s, self.teacher_tokens)
            low, high = quantile_interval(draws, level)
            tail = (1.0 - level) / 2.0
            if np.mean(np.isinf(draws)) > tail:
                high = None  # more draws than the upper tail say "no finite teacher": the interval is open above
            low = low if math.isfinite(low) else None
            high = high if high is not None and math.isfinite(high) else None
        return TeacherEstimate(estimate=size, low=low, high=high, level=level)


def extrapolation_text(groups: Sequence[tuple[float, float]], law: DSLLaw, side: Censoring) -> str:
    """The extrapolation warning for student groups (size, tokens) whose optima lie on ``side`` of the measured
    teacher losses: what they need, what was measured, what is reported instead, and what to measure."""
    from capgap.sizes.units import format_size

    low, high = law.file.diagnostics.teacher_loss_range or (math.nan, math.nan)
    span = law.file.diagnostics.teacher_range or (math.nan, math.nan)
    needed = [law.optimal_teacher_loss(s, d) for s, d in groups]
    points = [law.law_optimum(s, d) for s, d in groups]
    several_tokens = len({s for s, _ in groups}) < len(groups)
    names = [format_size(s) + (f" on {format_size(d)} tokens" if several_tokens else "") for s, d in groups]
    students = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    spread = f"{min(needed):.3g}" if f"{min(needed):.3g}" == f"{max(needed):.3g}" else f"{min(needed):.3g}-{max(needed):.3g}"
    loss = f"teacher loss {spread}" if len(needed) == 1 else f"teacher losses {spread}"
    sizes = [p.estimate for p in points]
    at = format_size(sizes[0]) if len(sizes) == 1 else f"{format_size(min(sizes))}-{format_size(max(sizes))}"
    saturated = any(p.censored for p in points)
    own = (f"the law's own optimum ({'a saturation size, ' if saturated else ''}{at}) is read off beyond the data"
           if len(points) == 1 else f"the law's own optima ({at}) are read off beyond the data")
    if side == "at_least":
        bound, edge = "at least the largest teacher measured", span[1]
        advice = f"measure teachers of loss below {low:.3g} (larger than {format_size(span[1])})"
    else:
        bound, edge = "at most the smallest teacher measured", span[0]
        advice = f"measure teachers of loss above {high:.3g} (smaller than {format_size(span[0])})"
    whose = "teacher" if len(groups) == 1 else "teachers"
    return (f"extrapolation: the optimal {whose} of the {students} student{'s' if len(groups) > 1 else ''} "
            f"need{'s' if len(groups) == 1 else ''} {loss}, outside the measured {low:.3g}-{high:.3g}: {own}, so "
            f"only a bound is reported, {bound} ({format_size(edge)}), with no interval; {advice}")


def optimal_size(coef: Mapping[str, float | np.ndarray], student_params: float, tokens: float,
                  teacher_tokens: TeacherTokens) -> np.ndarray:
    return teacher_size_for_loss(coef, optimal_teacher_loss_of(coef, student_params, tokens), teacher_tokens)


def _saturation_size(coef: Mapping[str, float], student_params: float, tokens: float, teacher_tokens: TeacherTokens) -> float:
    """The teacher size beyond which the student's predicted loss falls by less than SATURATION_NATS."""
    from scipy.optimize import brentq  # lazily: loading a law must not load scipy

    def shortfall(log_n: float) -> float:
        n = math.exp(log_n)
        lt = float(supervised_loss(coef, n, teacher_tokens.at(n)))
        return float(student_loss(coef, student_params, tokens, lt)) - limit - SATURATION_NATS
    limit_teacher = 1e30  # stands in for an infinitely large teacher
    limit = float(student_loss(coef, student_params, tokens, supervised_loss(coef, limit_teacher, teacher_tokens.at(limit_teacher))))
    low, high = math.log(1e3), math.log(limit_teacher)
    return math.exp(brentq(shortfall, low, high)) if shortfall(low) > 0 else math.exp(low)


def published_law(teacher_tokens: TeacherTokens | None = None) -> DSLLaw:
    """The law with Busbridge et al.'s published constants (no runs behind it, no intervals).

    Teachers are taken as trained on 20 tokens per parameter unless said otherwise.
    """
    rule = teacher_tokens or TeacherTokens(per_param=TOKENS_PER_PARAM)
    file = LawFile(law="dsl", coefficients=dict(PUBLISHED), size_measure="nonembed", metric="eval_loss",
                   direction="lower", fitted=False, provenance=PUBLISHED_SOURCE + "; "
                   + tokens_text(rule) + "; coefficients are specific to that setup: refit for other model families",
                   teacher_tokens=rule_dict(rule))
    return DSLLaw(file)


def rule_dict(rule: TeacherTokens) -> dict[str, float]:
    return {"common": rule.common} if rule.common is not None else {"per_param": rule.per_param}  # type: ignore[dict-item]


def tokens_text(rule: TeacherTokens) -> str:
    if rule.common is not None:
        return f"teachers trained on {rule.common:.3g} tokens each"
    return f"teachers trained on {rule.per_param:g} tokens per parameter"


def nonembed_lookup() -> dict[int, int]:
    from capgap.sizes.ladders import KNOWN_LADDERS

    return {m.params: m.params_nonembed for ladder in KNOWN_LADDERS.values() for m in ladder if m.params_nonembed}


def run_sizes(runs: Sequence[RunRecord], which: str, lookup: Mapping[int, int]) -> list[int | None]:
    return [r.size(which, "nonembed") or lookup.get(r.size(which, "total")) for r in runs]  # type: ignore[arg-type]
