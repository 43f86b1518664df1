"""The `power` law: T* = k·S^p (p = 1 is linear scaling; its interval says whether the data agree)."""

from __future__ import annotations

import numpy as np

from capgap.laws.base import register_law
from capgap.laws.curve import CurveLaw, grid_box

EXPONENT_BOUNDS = (0.05, 5.0)


@register_law("power")
class PowerLaw(CurveLaw):
    name = "power"
    formula = "T* = k·S^p"
    parameters = ("k", "p")
    # theta = (ln(T*/S) at the centre student, p): centring keeps the two nearly uncorrelated

    @staticmethod
    def log_location(theta, z_student, z_tokens):
        return theta[:, 0:1] + theta[:, 1:2] * z_student[None, :]

    @staticmethod
    def natural(theta, centre):
        # ln T* = m + c + p (ln S − m), so ln k = c + (1 − p) m
        return {"k": np.exp(theta[:, 0] + (1.0 - theta[:, 1]) * centre.log_student), "p": theta[:, 1]}

    @staticmethod
    def internal(coefficients, centre):
        p = coefficients["p"]
        return np.array([np.log(coefficients["k"]) - (1.0 - p) * centre.log_student, p])

    @staticmethod
    def teacher(coefficients, student, tokens):
        return np.asarray(coefficients["k"]) * np.power(float(student), np.asarray(coefficients["p"]))

    @classmethod
    def bounds(cls):
        return [(np.log(1e-2), np.log(1e5)), EXPONENT_BOUNDS]

    @classmethod
    def grid(cls, groups, centre):
        return grid_box([np.linspace(-1.0, 6.0, 15), (0.6, 1.0, 1.5)])
