"""Total <-> non-embedding parameter counts for a student that is not a model capgap knows exactly.

Busbridge et al.'s law counts non-embedding parameters, Zhang et al.'s total
ones. A size that matches a GPT2 or Pythia model (within 1%) converts through
that model's exact counts; any other size takes the embedding share of the
Pythia ladder at that size (interpolated on a log scale, the end model's share
beyond the ladder), and the result says which assumption it made.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict

from capgap.sizes.ladders import KNOWN_LADDERS, LadderModel
from capgap.laws.base import SizeMeasure
from capgap.sizes.units import format_size

MATCH_TOLERANCE = 0.01  # a size within 1% of a known model is that model
SHARE_LADDER = "pythia"  # the default ladder: its embedding share stands in for an unknown model's


class ConvertedSize(BaseModel):
    """A student size in one measure, and how it was obtained from the size the user gave."""

    model_config = ConfigDict(frozen=True)
    params: int
    measure: SizeMeasure
    rule: str  # 'as given', 'pythia-1.4b's exact count', 'assumed ...'
    exact: bool


def _known() -> list[LadderModel]:
    return [m for ladder in KNOWN_LADDERS.values() for m in ladder if m.params_nonembed]


def _share(total: float) -> float:
    """Non-embedding share of the Pythia ladder at this total size (log-linear in between, flat beyond)."""
    points = sorted((math.log(m.params), m.params_nonembed / m.params) for m in KNOWN_LADDERS[SHARE_LADDER])
    x = math.log(total)
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]


def _nonembed_of(total: float) -> float:
    return total * _share(total)


def _total_of(nonembed: float) -> float:
    """Invert the (monotone) total -> non-embedding map by bisection in log size."""
    low, high = math.log(nonembed), math.log(nonembed) + math.log(100.0)
    for _ in range(100):
        middle = (low + high) / 2.0
        low, high = (middle, high) if _nonembed_of(math.exp(middle)) < nonembed else (low, middle)
    return math.exp((low + high) / 2.0)


def convert_size(params: int, given: SizeMeasure, wanted: SizeMeasure) -> ConvertedSize:
    """``params`` counted as ``given``, expressed as ``wanted``, with the rule used."""
    if given == wanted:
        return ConvertedSize(params=params, measure=wanted, rule="as given", exact=True)
    for model in _known():
        if abs(model.size(given) / params - 1.0) <= MATCH_TOLERANCE:
            return ConvertedSize(params=model.size(wanted), measure=wanted, exact=True,
                                 rule=f"{model.name}'s exact {wanted} count")
    value = _nonembed_of(params) if wanted == "nonembed" else _total_of(params)
    total = params if given == "total" else value
    return ConvertedSize(params=int(round(value)), measure=wanted, exact=False,
                         rule=f"assumed a {SHARE_LADDER.capitalize()}-like embedding share at {format_size(total)} total "
                              f"({1.0 - _share(total):.0%} of the parameters are embeddings)")
