"""The `power` law: T* = k·S^p (p = 1 is linear scaling; its interval says whether the data agree)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from capgap.laws.base import FitOptions, register_law
from capgap.laws.curve import CurveLaw, fit_curve
from capgap.records import RunRecord


@register_law("power")
class PowerLaw(CurveLaw):
    name = "power"
    formula = "T* = k·S^p"
    parameters = ("k", "p")
    # theta = (ln(T*/scale) at S = scale, p): centring keeps the two nearly uncorrelated
    starts = [np.array([a, p]) for a in (0.0, 1.0, 2.0) for p in (0.5, 1.0, 1.5)]
    bounds = [(np.log(1e-3), np.log(1e3)), (0.05, 5.0)]

    @staticmethod
    def teacher(coefficients, student):
        return np.asarray(coefficients["k"]) * np.power(float(student), np.asarray(coefficients["p"]))

    @staticmethod
    def log_curve(theta, u):
        return theta[..., 0:1] + theta[..., 1:2] * u

    @staticmethod
    def jacobian(theta, u):
        return np.broadcast_to(np.stack([np.ones_like(u), u], axis=-1), theta.shape[:-1] + (u.size, 2))

    @staticmethod
    def natural(theta, log_scale):
        # T* = scale·e^a·(S/scale)^p, so k = e^a·scale^(1-p)
        return {"k": np.exp(theta[..., 0] + (1.0 - theta[..., 1]) * log_scale), "p": theta[..., 1]}


def fit(runs: Sequence[RunRecord], options: FitOptions) -> PowerLaw:
    """Fit T* = k·S^p to the runs' per-student optima."""
    return fit_curve(PowerLaw, runs, options)
