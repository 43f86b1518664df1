"""capgap: how large should the teacher be when distilling a language model?

Data flows one way, and so do the imports (docs/architecture.md; checked by import-linter in `make test`):
core -> sizes -> runs -> laws -> fit -> recommender / plan / plots -> measure -> commands.
This top-level package never imports torch or transformers (only
``capgap.measure`` does), so query, refit and plot start fast. Names below
are imported on first use (PEP 562), so `import capgap` loads neither
pandas nor scipy and `capgap recommend` starts quickly.

The modules that sat directly under ``capgap/`` before the packages (``capgap.lawfit``,
``capgap.recommendation``, ``capgap.store`` ...) still import, for one release, with a DeprecationWarning
that names their new home.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from typing import TYPE_CHECKING, Any

from capgap.core.errors import InputError

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "RunRecord": "capgap.runs.records",
    "metric_direction": "capgap.runs.records",
    "RunStore": "capgap.runs.store",
    "load_runs": "capgap.runs.store",
    "count_params": "capgap.sizes.units",
    "distill_flops": "capgap.sizes.units",
    "format_size": "capgap.sizes.units",
    "parse_size": "capgap.sizes.units",
    "fit_law": "capgap.fit.law_fit",
    "Recommendation": "capgap.recommender.answer",
    "recommend": "capgap.recommender.answer",
}

__all__ = ["InputError", *sorted(_LAZY)]

if TYPE_CHECKING:
    from capgap.fit.law_fit import fit_law
    from capgap.runs.records import RunRecord, metric_direction
    from capgap.recommender.answer import Recommendation, recommend
    from capgap.sizes.units import count_params, distill_flops, format_size, parse_size
    from capgap.runs.store import RunStore, load_runs


# Old module path -> its home since the packages (0.1.0). Kept for one release; each import warns.
MOVED_MODULES = {
    "capgap.errors": "capgap.core.errors", "capgap.output": "capgap.core.output",
    "capgap.resources": "capgap.core.resources",
    "capgap.records": "capgap.runs.records", "capgap.field_messages": "capgap.runs.field_messages",
    "capgap.run_reader": "capgap.runs.reader", "capgap.store": "capgap.runs.store", "capgap.groups": "capgap.runs.groups",
    "capgap.kinds": "capgap.runs.kinds", "capgap.ladder_quality": "capgap.runs.ladder_quality",
    "capgap.synthetic": "capgap.runs.synthetic",
    "capgap.ladders": "capgap.sizes.ladders", "capgap.costs": "capgap.sizes.costs",
    "capgap.onestage": "capgap.fit.onestage", "capgap.optima": "capgap.fit.optima",
    "capgap.lack_of_fit": "capgap.fit.lack_of_fit", "capgap.one_sided": "capgap.fit.one_sided",
    "capgap.lawfit": "capgap.fit.law_fit",
    "capgap.lawfiles": "capgap.laws.files", "capgap.regime": "capgap.laws.regime",
    "capgap.dsl_synthetic": "capgap.laws.dsl_synthetic",
    "capgap.recommendation": "capgap.recommender.answer", "capgap.recommend_text": "capgap.recommender.text",
    "capgap.strategies": "capgap.recommender.strategies", "capgap.compute_optimal": "capgap.recommender.compute_optimal",
    "capgap.near_miss": "capgap.recommender.near_miss", "capgap.ladder_snap": "capgap.recommender.ladder_snap",
    "capgap.size_convert": "capgap.recommender.size_convert", "capgap.reach": "capgap.recommender.reach",
    "capgap.evidence": "capgap.recommender.evidence", "capgap.assistants": "capgap.recommender.assistants",
    "capgap.plan_scoring": "capgap.plan.scoring", "capgap.pareto": "capgap.plots.pareto",
    "capgap.cli": "capgap.commands.cli", "capgap.shipped": "capgap.commands.shipped",
}
# capgap.sizes, capgap.fit, capgap.plan and capgap.plots became packages of the same name that answer their old
# module's names (capgap.core.faces), so they need no alias.


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old path as the module at its new home (the same object, so setting a name on one sets it on
    both), with a DeprecationWarning."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.machinery.ModuleSpec(fullname, self) if fullname in MOVED_MODULES else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        new = MOVED_MODULES[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; the old path goes in the next release",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module: Any) -> None:  # the module at the new home is already executed
        pass


if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'capgap' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
