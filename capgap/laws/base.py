"""The common face of every law family, and the law file format.

A law answers ``optimal_teacher(student_params) -> TeacherEstimate`` (a point
with a 90% interval, or a censored bound) and round-trips through a JSON law
file (``LawFile``). The recommender and the plots only ever use this face.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from capgap.core.errors import InputError

Censoring = Literal["at_least", "at_most"]
SizeMeasure = Literal["total", "nonembed"]


class _Interval(BaseModel):
    """A value with an optional [low, high]: never of zero width (the data cannot give one)."""

    low: float | None = None
    high: float | None = None

    @model_validator(mode="after")
    def _no_zero_width(self):  # noqa: ANN202
        if collapsed(self.low, self.high):
            raise ValueError("a zero-width interval is not an interval; give low = high = None")
        return self


class TeacherEstimate(_Interval):
    """An optimal teacher size: estimate with interval, or a one-sided bound.

    ``censored='at_least'`` means the optimum lies beyond the largest teacher
    measured: ``estimate`` is then that bound, never an interior optimum.
    ``low``/``high`` are None where no interval is available.
    """

    model_config = ConfigDict(frozen=True)
    estimate: float
    low: float | None = None
    high: float | None = None
    level: float = 0.9
    censored: Censoring | None = None
    # True: low/high are the measured teachers either side of the best ones (an exact fit, no noise measured),
    # what a curve with one minimum allows, not an interval at ``level``.
    bracket: bool = False


class StudentOptimum(_Interval):
    """The optimal teacher of one (family, student init, student size, tokens) group, read off the fitted law.

    ``censored``: the group's own ladder does not bracket it ('at_least': beyond its largest
    teacher, only ``low`` is given; 'at_most': below its smallest, only ``high``).
    """

    model_config = ConfigDict(frozen=True)
    family: str = "unknown"
    student_init: str | None = None  # how the students were made (pruned, scratch), when known
    student_params: int
    tokens: int | None = None
    teacher_params: float  # the law's estimate
    low: float | None = None
    high: float | None = None
    censored: Censoring | None = None
    n_runs: int = 0
    teachers: list[int] = Field(default_factory=list)  # teacher sizes measured
    # Measured teachers far from the best ones (capgap.fit.one_sided.far_bracket) that the interval reaches: between
    # them where the optimum lies is the curve model's assumption. None: no such widening on that side.
    far_low: float | None = None
    far_high: float | None = None
    # Another law's reading of this optimum (dsl's interval, where it follows the runs by its own checks) that the
    # interval is widened to reach: there the curve shape, not the runs, decides T* (law_fit, "read the optimum
    # apart"). None: no such widening on that side.
    model_low: float | None = None
    model_high: float | None = None

    @property
    def reach_low(self) -> float | None:
        """The farthest point below the best teachers that the interval is widened to reach (None: none)."""
        return min((v for v in (self.far_low, self.model_low) if v), default=None)

    @property
    def reach_high(self) -> float | None:
        """The farthest point above the best teachers that the interval is widened to reach (None: none)."""
        return max((v for v in (self.far_high, self.model_high) if v), default=None)


class LawRegime(BaseModel):
    """The setting a law was fitted on: recommend warns when a student lies outside it.

    Sizes are in the law file's ``size_measure``; tokens per parameter are the
    student's distillation tokens over its size. A field is None when unknown.
    """

    model_config = ConfigDict(frozen=True)
    student_params: list[float] | None = None  # [min, max]
    tokens_per_param: list[float] | None = None  # [min, max]
    student_init: list[str] = Field(default_factory=list)  # how the students were made: pruned, scratch


def quantile_interval(samples: Sequence[float] | np.ndarray, level: float = 0.9) -> tuple[float, float]:
    """Equal-tailed percentile interval of draws (likelihood or bootstrap), NaNs dropped."""
    values = np.asarray(samples, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (float("nan"), float("nan"))
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return (float(low), float(high))


def one_sided_bound(edge: float, draws: np.ndarray | None, side: Censoring, level: float = 0.9) -> float:
    """A censored optimum's bound: the ``edge`` rung, loosened to the draws' one-sided bound at ``level`` where
    that reaches further ("at_most": above the edge; "at_least": below it), since an optimum read just past the
    edge may lie inside. The edge itself without finite draws."""
    finite = np.asarray(draws if draws is not None else [], dtype=float)
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return float(edge)
    if side == "at_most":
        return max(float(edge), float(np.quantile(finite, level)))
    return min(float(edge), float(np.quantile(finite, 1.0 - level)))


DENSE_RUNG = 2.05  # the largest factor between the edge and its neighbour (a doubling ladder, or finer)


def edge_rung(teachers, side: Censoring, clear: bool = True) -> float:
    """The teacher that bounds T* where the edge of the sorted ladder ``teachers`` was best ("at_most": the
    smallest; "at_least": the largest): the edge itself where its lead was ``clear`` and its neighbour lies within
    DENSE_RUNG of it, else the neighbour."""
    edge, neighbour = (teachers[0], teachers[1]) if side == "at_most" else (teachers[-1], teachers[-2])
    dense = max(edge, neighbour) / min(edge, neighbour) <= DENSE_RUNG
    return float(edge if clear and dense else neighbour)


def collapsed(low: float | None, high: float | None) -> bool:
    """True for an interval of (nearly) zero width: a number the data cannot have given."""
    if low is None or high is None:
        return False
    return not high - low > 1e-9 * max(abs(low), abs(high), 1e-300)


class Goodness(BaseModel):
    """In-sample fit: RMSE of the metric (curve laws; dsl too, beside its RMSE of the log metric)."""

    model_config = ConfigDict(frozen=True, extra="allow")
    rmse: float | None = None  # metric units
    rmse_log: float | None = None
    n_runs: int | None = None
    n_groups: int | None = None
    n_outside_window: int | None = None  # curve laws: runs left out by a window around each optimum
    max_abs_log: float | None = None  # dsl: the largest |log residual|
    mean_huber: dict[str, float] | None = None  # dsl: the mean Huber loss of each stage (supervised, distillation)
    held_out_rmse_log: float | None = None  # dsl: RMSE of log loss predicted for held-out runs
    pure_error_log: float | None = None  # dsl: spread of log loss between repeated seeds (None: no repeats)


class BootstrapReport(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")
    method: str = ""
    resamples: int = 0
    failed: int = 0  # left out of the intervals, and said so
    unconverged: int = 0
    effective: float | None = None  # likelihood draws: the importance sample's effective size
    proposals: int | None = None  # likelihood draws: proposals per round
    temper: float | None = None  # likelihood draws: the Bartlett-type factor the likelihood was tempered by


class ModelChoice(BaseModel):
    """How `auto` chose the family: held-out scores and the rule applied."""

    model_config = ConfigDict(frozen=True, extra="allow")
    method: str
    metric: str
    rule: str
    folds: int
    scores: dict[str, float]
    excluded: dict[str, str] = Field(default_factory=dict)
    winner: str
    runner_up: str | None = None
    margin: float | None = None  # the runner-up's held-out score minus the winner's (negative: the winner is simpler)
    note: str | None = None
    # Families that draw their own curve (dsl) are also scored with the curve model's shape, for the record:
    # the curve family whose fold fits lent it, and the held-out RMSE so (not used in the choice).
    shape_from: dict[str, str] = Field(default_factory=dict)
    curve_shape_scores: dict[str, float] = Field(default_factory=dict)
    summary: str | None = None  # one sentence: which family won, and by how much


class LawDiagnostics(BaseModel):
    """What a fit says about itself. ``warnings``: sentences that `fit` prints and `recommend` repeats.

    Older law files wrote a free-form dict here; their keys load as extra fields.
    """

    model_config = ConfigDict(frozen=True, extra="allow")
    warnings: list[str] = Field(default_factory=list)
    formula: str = ""
    model: str = ""
    # The curves' far shape (capgap.fit.onestage.shape_curve): [s, alpha] left of the optimum, then right of it
    # (older files: one [s, alpha] for both sides); s = 0: parabola.
    shape: list[float] | None = None
    asymmetry: float | None = None  # left/right curvature ratio shared by the groups (None: free per group, or skewed)
    skew: float | None = None  # the curves' shared skew kappa (capgap.fit.onestage.skewed_square); None: not skewed
    noise: float | None = None  # residual noise scale, metric units
    df: int | None = None  # residual degrees of freedom
    goodness: Goodness | None = None
    bootstrap: BootstrapReport | None = None
    cv: ModelChoice | None = None
    skipped_groups: list[str] = Field(default_factory=list)
    extend_ladder: list[str] = Field(default_factory=list)
    free: list[str] = Field(default_factory=list)  # dsl: constants fitted
    teacher_range: list[float] | None = None  # dsl: [min, max] of the measured teacher sizes (the file's measure)
    teacher_loss_range: list[float] | None = None  # dsl: [min, max] of the measured teacher losses
    no_interval: str | None = None  # dsl: why the optimal teacher is given without an interval (None: it has one)
    fixed_at_published: list[str] = Field(default_factory=list)  # dsl: constants held at the published values
    notes: list[str] = Field(default_factory=list)  # what the fit assumed
    huber_delta: float | None = None  # dsl: the Huber loss's delta on log loss
    teacher_loss_assumed: bool = False  # dsl: no run measured teacher_loss; the supervised law's values were used


class LawFile(BaseModel):
    """What `capgap fit --out` writes and `capgap recommend --law` reads."""

    model_config = ConfigDict(extra="allow")
    law: str  # family name: ratio, linear, power, dsl
    coefficients: dict[str, float]
    intervals: dict[str, list[float] | None] = Field(default_factory=dict)  # name -> [low, high], or None: no interval
    samples: list[dict[str, float]] = Field(default_factory=list)  # bootstrap draws of the coefficients
    optima: list[StudentOptimum] = Field(default_factory=list)
    size_measure: SizeMeasure = "total"
    metric: str = "eval_loss"
    direction: Literal["lower", "higher"] = "lower"
    n_runs: int = 0
    runs_hash: str | None = None
    student_range: list[float] | None = None  # [min, max] student size fitted on
    level: float = 0.9
    provenance: str = ""
    fitted: bool = True  # False for a reference reading with no runs behind it
    # A one-sided answer (capgap.fit.one_sided): the coefficients are a bound on T*, not an estimate of it.
    bound: Censoring | None = None
    regime: LawRegime = Field(default_factory=LawRegime)
    diagnostics: LawDiagnostics = Field(default_factory=LawDiagnostics)
    teacher_tokens: dict[str, float] | None = None  # dsl: {"common": D_T} or {"per_param": D_T / N_T}
    # The student kinds (dense, moe) of the runs fitted on (capgap.runs.kinds); empty: not recorded (dense).
    student_kinds: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _no_zero_width_interval(self) -> "LawFile":
        # No zero-width interval can be written or read: one found becomes "no interval", and the file says so.
        dropped = [name for name, v in self.intervals.items() if v is not None and collapsed(v[0], v[1])]
        if dropped:
            for name in dropped:
                self.intervals[name] = None
            note = f"the interval of {', '.join(dropped)} had zero width and was dropped (no interval)"
            if note not in self.diagnostics.warnings:
                self.diagnostics = self.diagnostics.model_copy(update={"warnings": [*self.diagnostics.warnings, note]})
        return self


class CurveMethod(BaseModel):
    """The curve model's method choices: what ``bench/fit_calibration.py`` compares. The defaults are what capgap
    ships; the others are kept for the calibration study (its --intervals, --asymmetry, --far-shape, --window)."""

    model_config = ConfigDict(frozen=True)
    # "likelihood": draws from the tempered profile likelihood; "bootstrap": residual-bootstrap refits.
    intervals: Literal["likelihood", "bootstrap"] = "likelihood"
    # How curves are asymmetric: "ratio" (left/right curvatures, kinked at the optimum: free per group or shared),
    # "skew" (one shared LINEX skew, smooth), or "compare": the ratio model answers, the skew model checks it, and
    # where they put an optimum apart the intervals span both and a warning says so.
    asymmetry: Literal["compare", "ratio", "skew"] = "compare"
    # One left/right curvature ratio for all groups even where every group has enough teachers for its own.
    shared_asymmetry: bool = False
    # The far shape of the curves: 2 = one (s, alpha) for both sides; 4 = one per side (it lost on the
    # flattening design, coverage 0.5 against 0.92 in a 12-data-set trial); 0 = none (parabolas in ln T).
    far_shape_parameters: Literal[0, 2, 4] = 2
    # ln units: read the location from the teachers within this distance of each group's optimum (None: all).
    window: float | None = None


class FitOptions(BaseModel):
    """How to fit a law family from runs: shared by every family's module-level ``fit``."""

    model_config = ConfigDict(frozen=True)
    method: CurveMethod = CurveMethod()  # the curve model's method (the dsl law ignores it)
    metric: str = "eval_loss"
    direction: Literal["lower", "higher"] = "lower"
    size_measure: SizeMeasure = "total"
    family: str | None = None  # keep only runs of this model family (None: all)
    bootstrap: int = 1000  # draws for the intervals (0: no intervals)
    seed: int = 0
    level: float = 0.9
    # For model choice: a quick refit (least squares, no intervals) from a fit of nearly the same runs.
    start: dict[str, float] | None = None  # that fit's coefficients (and far shape, "shape_s", "shape_alpha" and
    # "shape_s_right", "shape_alpha_right")
    quick: bool = False


@runtime_checkable
class Law(Protocol):
    """The face every law family shows the recommender and the plots. (Fitting a family to runs is
    ``capgap.fit.law_fit.fit_family``: a law here is its formula, its parameters and how it reads.)"""

    name: str
    file: LawFile

    def optimal_teacher(self, student_params: float, tokens: float | None = None) -> TeacherEstimate:
        """The teacher size that gives the best student of this size."""
        ...

    def predict_metric(self, student_params: float, teacher_params: float, tokens: float | None = None) -> float | None:
        """The student's expected metric with this teacher, or None if the law cannot say."""
        ...



_LAW_CLASSES: dict[str, Callable[[LawFile], Law]] = {}


def register_law(name: str) -> Callable[[type], type]:
    """Class decorator: make a law family loadable from its law file by name."""

    def decorate(cls: type) -> type:
        _LAW_CLASSES[name] = cls
        return cls

    return decorate


class UnfittedLawWarning(UserWarning):
    """A law used that no runs stand behind (a published reading, e.g. the shipped default)."""


def law_class(name: str) -> Callable[[LawFile], Law]:
    """The registered class of a law family, by name."""
    _import_families(name)
    if name not in _LAW_CLASSES:
        raise InputError(f"law family {name!r} is unknown; accepted: {', '.join(sorted(_LAW_CLASSES))}")
    return _LAW_CLASSES[name]


def registered_families() -> tuple[str, ...]:
    """Every law family, simplest first (fewest coefficients): the tie-break order of `auto`."""
    _import_families()
    def complexity(name: str) -> float:  # a class that does not list its coefficients sorts last
        parameters = getattr(_LAW_CLASSES[name], "parameters", None)
        return len(parameters) if parameters is not None else float("inf")

    return tuple(sorted(_LAW_CLASSES, key=lambda name: (complexity(name), name)))


def law_from_file(file: LawFile) -> Law:
    cls = law_class(file.law)
    if not file.fitted:
        import warnings

        warnings.warn(f"the {file.law} law in use is not fitted from runs: {file.provenance}", UnfittedLawWarning, stacklevel=3)
    return cls(file)


def load_law(path: str | Path) -> Law:
    """Read a law JSON file written by `capgap fit --out` (or the shipped default)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("law file not found; give a LAW.json written by `capgap fit --out`, or 'default'", where=str(path))
    try:
        file = LawFile.model_validate(json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError) as exc:  # unreadable: permissions, a binary file
        raise InputError(f"cannot read the law file ({exc.__class__.__name__}); give a LAW.json written by `capgap fit --out`", where=str(path)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg} at line {exc.lineno}); expected a law file from `capgap fit --out`", where=str(path)) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InputError(f"not a law file: {field}: {first['msg']}", where=str(path)) from None
    return law_from_file(file)


def save_law(law: Law, path: str | Path) -> None:
    """Write the law file whole or not at all (capgap.core.output: atomic for files, written through for devices).

    A fit killed while writing leaves the old file (or none) and no half-written one.
    """
    from capgap.core.output import write_output

    write_output(path, law.file.model_dump_json(indent=2) + "\n", what="law file")


# The modules of capgap/laws/ that register a law family (the others: this face, the curve model's shared
# fitting, law files, regimes, synthetic runs).
FAMILY_MODULES = ("dsl", "linear", "power", "power_tokens", "ratio")


def _import_families(wanted: str | None = None) -> None:
    # Families register themselves on import; import them lazily to keep start-up fast:
    # only the wanted family's module when it has one, all of them otherwise.
    import importlib

    names = FAMILY_MODULES
    if wanted in _LAW_CLASSES:
        return
    module = wanted.replace("-", "_") if wanted is not None else None  # power-tokens lives in power_tokens.py
    if module in names:
        importlib.import_module(f"capgap.laws.{module}")
        if wanted in _LAW_CLASSES:
            return
    for name in names:
        importlib.import_module(f"capgap.laws.{name}")
