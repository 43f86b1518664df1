"""The `linear` law: T* = a·S + b (a slope with an offset, in parameters)."""

from __future__ import annotations

import numpy as np

from capgap.laws.base import register_law
from capgap.laws.curve import CurveLaw, grid_box

_FLOOR = 1e-9  # a location that goes non-positive is pushed far below every teacher, not a NaN


@register_law("linear")
class LinearLaw(CurveLaw):
    name = "linear"
    formula = "T* = a·S + b"
    parameters = ("a", "b")
    # theta = (a, b / centre size)

    @staticmethod
    def log_location(theta, z_student, z_tokens):
        return np.log(np.maximum(theta[:, 0:1] * np.exp(z_student)[None, :] + theta[:, 1:2], _FLOOR))

    @staticmethod
    def natural(theta, centre):
        return {"a": theta[:, 0], "b": theta[:, 1] * np.exp(centre.log_student)}

    @staticmethod
    def internal(coefficients, centre):
        return np.array([coefficients["a"], coefficients["b"] / np.exp(centre.log_student)])

    @staticmethod
    def teacher(coefficients, student, tokens):
        return np.asarray(coefficients["a"]) * student + np.asarray(coefficients["b"])

    @staticmethod
    def shift(theta, by):
        return theta * np.exp(by)  # a·S + b scaled: every location moves by the same factor

    @classmethod
    def bounds(cls):
        return [(1e-2, 1e4), (-1e3, 1e3)]

    @classmethod
    def grid(cls, groups, centre):
        return grid_box([(1.0, 1.5, 2.5, 4.0, 7.0, 12.0, 30.0), (-0.5, 0.0, 0.5)])
