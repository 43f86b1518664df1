"""The `ratio` law: T* = r·S, the paper's reading of the law of capacity gap (one parameter)."""

from __future__ import annotations

import numpy as np

from capgap.laws.base import register_law
from capgap.laws.curve import CurveLaw, grid_box


@register_law("ratio")
class RatioLaw(CurveLaw):
    name = "ratio"
    formula = "T* = r·S"
    parameters = ("r",)
    # theta = (ln r,)

    @staticmethod
    def log_location(theta, z_student, z_tokens):
        return theta[:, 0:1] + z_student[None, :]

    @staticmethod
    def natural(theta, centre):
        return {"r": np.exp(theta[:, 0])}

    @staticmethod
    def internal(coefficients, centre):
        return np.array([np.log(coefficients["r"])])

    @staticmethod
    def teacher(coefficients, student, tokens):
        return np.asarray(coefficients["r"]) * student

    @classmethod
    def bounds(cls):
        return [(np.log(1e-2), np.log(1e5))]

    @classmethod
    def grid(cls, groups, centre):
        return grid_box([np.linspace(-1.0, 6.0, 15)])
