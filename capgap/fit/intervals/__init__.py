"""Intervals of the one-stage model: one interface (``draws.IntervalMethod``), two methods.

``draw_intervals(groups, point, options)`` returns draws of the search point (an ``IntervalDraws``: the draws, a
typed ``BootstrapReport`` and the sentences to say) by ``options.method.intervals``: "likelihood" (what capgap
ships: the tempered profile likelihood, ``likelihood.py``, falling back to the bootstrap where its sampler
collapses) or "bootstrap" (residual-bootstrap refits, ``bootstrap.py``).
"""

from __future__ import annotations

import numpy as np

from capgap.fit.intervals.bootstrap import bootstrap_intervals
from capgap.fit.intervals.draws import IntervalDraws, IntervalMethod
from capgap.fit.intervals.likelihood import likelihood_intervals
from capgap.fit.onestage import OneStageFit
from capgap.laws.base import FitOptions
from capgap.runs.groups import RunGroups

__all__ = ["INTERVAL_METHODS", "IntervalDraws", "IntervalMethod", "draw_intervals"]

INTERVAL_METHODS: dict[str, IntervalMethod] = {"likelihood": likelihood_intervals, "bootstrap": bootstrap_intervals}


def draw_intervals(groups: RunGroups, point: OneStageFit, options: FitOptions, inflation: float = 1.0,
                   fallback: bool = True, temper: float | None = None) -> tuple[IntervalDraws, OneStageFit]:
    """``options.bootstrap`` draws of the search point by ``options.method.intervals``, seeded by ``options.seed``.

    Returns (the draws, the point fit): a method that finds a better fit than the point fit moves it there first.
    """
    method = INTERVAL_METHODS[options.method.intervals]
    return method(groups, point, options.bootstrap, np.random.default_rng(options.seed), inflation, fallback, temper)
