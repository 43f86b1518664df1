"""capgap: how large should the teacher be when distilling a language model?

Data flows one way: measure -> runs -> fit -> law -> recommend / plot.
This top-level package never imports torch or transformers (only
``capgap.measure`` does), so query, refit and plot start fast.
"""

from capgap.errors import InputError
from capgap.records import RunRecord, metric_direction
from capgap.sizes import count_params, distill_flops, format_size, parse_size
from capgap.store import RunStore, load_runs

__version__ = "0.1.0"

__all__ = [
    "InputError",
    "RunRecord",
    "RunStore",
    "count_params",
    "distill_flops",
    "format_size",
    "load_runs",
    "metric_direction",
    "parse_size",
]
