"""capgap: how large should the teacher be when distilling a language model?

Data flows one way: measure -> runs -> fit -> law -> recommend / plot.
This top-level package never imports torch or transformers (only
``capgap.measure`` does), so query, refit and plot start fast. Names below
are imported on first use (PEP 562), so `import capgap` loads neither
pandas nor scipy and `capgap recommend` starts quickly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from capgap.errors import InputError

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "RunRecord": "capgap.records",
    "metric_direction": "capgap.records",
    "RunStore": "capgap.store",
    "load_runs": "capgap.store",
    "count_params": "capgap.sizes",
    "distill_flops": "capgap.sizes",
    "format_size": "capgap.sizes",
    "parse_size": "capgap.sizes",
    "fit_law": "capgap.lawfit",
    "Recommendation": "capgap.recommendation",
    "recommend": "capgap.recommendation",
}

__all__ = ["InputError", *sorted(_LAZY)]

if TYPE_CHECKING:
    from capgap.lawfit import fit_law
    from capgap.records import RunRecord, metric_direction
    from capgap.recommendation import Recommendation, recommend
    from capgap.sizes import count_params, distill_flops, format_size, parse_size
    from capgap.store import RunStore, load_runs


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'capgap' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
