"""The `ratio` law: T* = r·S, the paper's reading of the law of capacity gap (one parameter)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from capgap.laws.base import FitOptions, register_law
from capgap.laws.curve import CurveLaw, fit_curve
from capgap.records import RunRecord


@register_law("ratio")
class RatioLaw(CurveLaw):
    name = "ratio"
    formula = "T* = r·S"
    parameters = ("r",)
    # theta = (ln r,)
    starts = [np.array([0.0]), np.array([1.0]), np.array([2.0])]
    bounds = [(np.log(1e-3), np.log(1e3))]

    @staticmethod
    def teacher(coefficients, student):
        return np.asarray(coefficients["r"]) * student

    @staticmethod
    def log_curve(theta, u):
        return theta[..., 0:1] + u

    @staticmethod
    def jacobian(theta, u):
        return np.broadcast_to(np.ones_like(u)[:, None], theta.shape[:-1] + (u.size, 1))

    @staticmethod
    def natural(theta, log_scale):
        return {"r": np.exp(theta[..., 0])}


def fit(runs: Sequence[RunRecord], options: FitOptions) -> RatioLaw:
    """Fit T* = r·S to the runs' per-student optima."""
    return fit_curve(RatioLaw, runs, options)
