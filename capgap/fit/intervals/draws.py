"""What every interval method returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from capgap.fit.onestage import OneStageFit
from capgap.laws.base import BootstrapReport
from capgap.runs.groups import RunGroups


@dataclass(frozen=True)
class IntervalDraws:
    """Draws of the search point (n, P), how they were made (a typed report) and what to say of them."""

    draws: np.ndarray
    report: BootstrapReport
    warnings: list[str]


class IntervalMethod(Protocol):
    """An interval method: ``n`` draws of the search point about ``point``; returns them and the point fit, which a
    method may move where it finds a better fit than the optimiser's. ``inflation`` widens the draws (a lack of fit
    said); ``fallback`` and ``temper`` are the likelihood method's (ignored by the others)."""

    def __call__(self, groups: RunGroups, point: OneStageFit, n: int, rng: np.random.Generator, inflation: float,
                 fallback: bool = True, temper: float | None = None) -> tuple[IntervalDraws, OneStageFit]: ...
