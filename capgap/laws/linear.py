"""The `linear` law: T* = a·S + b (a slope with an offset, in parameters)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from capgap.laws.base import FitOptions, register_law
from capgap.laws.curve import CurveLaw, fit_curve
from capgap.records import RunRecord

_FLOOR = 1e-9  # a curve that goes non-positive is pushed back by a huge log residual, not a NaN


@register_law("linear")
class LinearLaw(CurveLaw):
    name = "linear"
    formula = "T* = a·S + b"
    parameters = ("a", "b")
    # theta = (a, b/scale)
    starts = [np.array([a, b]) for a in (1.0, 2.5, 5.0) for b in (-0.5, 0.0, 0.5)]
    bounds = [(1e-3, 1e3), (-1e3, 1e3)]

    @staticmethod
    def teacher(coefficients, student):
        return np.asarray(coefficients["a"]) * student + np.asarray(coefficients["b"])

    @staticmethod
    def log_curve(theta, u):
        return np.log(np.maximum(theta[..., 0:1] * np.exp(u) + theta[..., 1:2], _FLOOR))

    @staticmethod
    def jacobian(theta, u):
        inner = np.maximum(theta[..., 0:1] * np.exp(u) + theta[..., 1:2], _FLOOR)
        return np.stack([np.exp(u) / inner, 1.0 / inner], axis=-1)

    @staticmethod
    def natural(theta, log_scale):
        return {"a": theta[..., 0], "b": theta[..., 1] * np.exp(log_scale)}


def fit(runs: Sequence[RunRecord], options: FitOptions) -> LinearLaw:
    """Fit T* = a·S + b to the runs' per-student optima."""
    return fit_curve(LinearLaw, runs, options)
