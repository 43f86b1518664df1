"""The `power-tokens` law: T* = k·S^p·(D/S)^q, the best teacher as a function of size and tokens per parameter.

Busbridge et al.'s distillation scaling law puts the best teacher of a 1B
student at ≈81x at 20 tokens per parameter and ≈8.5x at 320: a student
distilled longer wants a different teacher. q says how strongly. Fitting q
needs runs at two or more tokens-per-parameter regimes.
"""

from __future__ import annotations

import numpy as np

from capgap.laws.base import register_law
from capgap.laws.curve import CurveLaw, grid_box
from capgap.laws.power import EXPONENT_BOUNDS

TOKEN_EXPONENT_BOUNDS = (-3.0, 3.0)


def token_regimes(groups) -> int:
    """Distinct tokens-per-parameter regimes of the groups (within 10% in log)."""
    tpp = groups.log_tokens_per_param
    return int(np.unique(np.round(tpp[np.isfinite(tpp)], 1)).size)


@register_law("power-tokens")
class PowerTokensLaw(CurveLaw):
    name = "power-tokens"
    formula = "T* = k·S^p·(D/S)^q"
    parameters = ("k", "p", "q")
    uses_tokens = True
    # theta = (ln(T*/S) at the centre, p, q), sizes and tokens per parameter relative to the centre

    @staticmethod
    def log_location(theta, z_student, z_tokens):
        return theta[:, 0:1] + theta[:, 1:2] * z_student[None, :] + theta[:, 2:3] * z_tokens[None, :]

    @staticmethod
    def natural(theta, centre):
        # ln T* = m + c + p (ln S − m) + q (ln(D/S) − t), so ln k = c + (1 − p) m − q t
        log_k = theta[:, 0] + (1.0 - theta[:, 1]) * centre.log_student - theta[:, 2] * centre.log_tokens_per_param
        return {"k": np.exp(log_k), "p": theta[:, 1], "q": theta[:, 2]}

    @staticmethod
    def internal(coefficients, centre):
        p, q = coefficients["p"], coefficients["q"]
        c = np.log(coefficients["k"]) - (1.0 - p) * centre.log_student + q * centre.log_tokens_per_param
        return np.array([c, p, q])

    @staticmethod
    def teacher(coefficients, student, tokens):
        k, p, q = (np.asarray(coefficients[n]) for n in ("k", "p", "q"))
        return k * np.power(float(student), p) * np.power(float(tokens) / float(student), q)

    @classmethod
    def bounds(cls):
        return [(np.log(1e-2), np.log(1e5)), EXPONENT_BOUNDS, TOKEN_EXPONENT_BOUNDS]

    @classmethod
    def grid(cls, groups, centre):
        return grid_box([np.linspace(-1.0, 6.0, 15), (0.6, 1.0, 1.5), (-0.8, -0.3, 0.0, 0.3)])

    @classmethod
    def cannot_fit(cls, groups):
        if not np.isfinite(groups.log_tokens_per_param).all():
            return "the power-tokens law needs the distillation tokens of every run"
        regimes = token_regimes(groups)
        if regimes < 2:
            return (f"the power-tokens law needs runs at two or more tokens-per-parameter regimes; found {regimes} "
                    "(distil some students for longer or shorter)")
        design = np.column_stack([np.ones(len(groups.keys)), groups.log_student, groups.log_tokens_per_param])
        if np.linalg.matrix_rank(design, tol=1e-6) < 3:
            return "the power-tokens law needs student sizes and tokens per parameter that vary independently"
        return None
