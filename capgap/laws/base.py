"""The common face of every law family, and the law file format.

A law answers ``optimal_teacher(student_params) -> TeacherEstimate`` (a point
with a 90% interval, or a censored bound) and round-trips through a JSON law
file (``LawFile``). The recommender and the plots only ever use this face.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from capgap.errors import InputError

Censoring = Literal["at_least", "at_most"]
SizeMeasure = Literal["total", "nonembed"]


class TeacherEstimate(BaseModel):
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


class StudentOptimum(BaseModel):
    """The measured optimal teacher of one (family, student size, tokens) group."""

    model_config = ConfigDict(frozen=True)
    family: str = "unknown"
    student_init: str | None = None  # how the students were made (pruned, scratch), when known
    student_params: int
    tokens: int | None = None
    teacher_params: float  # the estimate, or the bound when censored
    low: float | None = None
    high: float | None = None
    censored: Censoring | None = None
    n_runs: int = 0
    teachers: list[int] = Field(default_factory=list)  # teacher sizes measured


class LawFile(BaseModel):
    """What `capgap fit --out` writes and `capgap recommend --law` reads."""

    model_config = ConfigDict(extra="allow")
    law: str  # family name: ratio, linear, power, dsl
    coefficients: dict[str, float]
    intervals: dict[str, list[float]] = Field(default_factory=dict)  # name -> [low, high]
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
    diagnostics: dict[str, Any] = Field(default_factory=dict)


class FitOptions(BaseModel):
    """How to fit a law family from runs: shared by every family's module-level ``fit``."""

    model_config = ConfigDict(frozen=True)
    metric: str = "eval_loss"
    direction: Literal["lower", "higher"] = "lower"
    size_measure: SizeMeasure = "total"
    family: str | None = None  # keep only runs of this model family (None: all)
    bootstrap: int = 1000  # resamples over whole runs for intervals (0: no intervals)
    seed: int = 0
    level: float = 0.9


@runtime_checkable
class Law(Protocol):
    """The face every law family shows the recommender and the plots."""

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
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(law.file.model_dump_json(indent=2) + "\n")
    tmp.replace(path)  # never a half-written law file


def _import_families(wanted: str | None = None) -> None:
    # Families register themselves on import; import them lazily to keep start-up fast:
    # only the wanted family's module when it has one, all of them otherwise.
    import importlib
    import pkgutil

    import capgap.laws as package

    names = [m.name for m in pkgutil.iter_modules(package.__path__) if m.name != "base"]
    if wanted in _LAW_CLASSES:
        return
    if wanted in names:
        importlib.import_module(f"capgap.laws.{wanted}")
        if wanted in _LAW_CLASSES:
            return
    for name in names:
        importlib.import_module(f"capgap.laws.{name}")
