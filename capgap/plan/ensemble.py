"""How much a batch shrinks the spread of the fit's own draws of ln T*: a linear-Bayes (ensemble Kalman) update.

The Fisher score (``capgap.plan.scoring``) is local: at each draw of the model it asks how well a design pins
the optimum *near that draw*. Where some draws put the optimum past the smallest (or largest) teacher, no design
is credited anything there (the fit would answer with a bound), so the planner keeps measuring where the draws
already agree and never the runs that would tell the draws apart: a loop with the optimum at 1.6x, one rung
below it, measured 1.75x, 3.45x and 4.84x for 40 runs while the interval's low end stayed below the ladder
(bench/plan_efficiency.py). This score is global instead. Each draw predicts every candidate run's metric; the
draws are a sample of what the runs so far allow, so the covariance across draws of the batch's predictions and
of ln T* gives the expected variance of ln T* after the batch is measured (with the fit's noise on each run):

    Var_after = Var(ln T*) - c^T (C + noise^2 I)^-1 c,  C = Cov(predictions), c = Cov(predictions, ln T*),

exact for a linear-Gaussian model, and it needs no refit per candidate. It is used once every target's group is
fitted, combined with the Fisher score (``capgap.plan.search``). A group with no runs has no spread in its
baseline or curvature across the draws, so its runs would look falsely informative: the Fisher score (which
counts what the fit can spend on a design) plans those alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # a type only: scoring imports this module
    from capgap.plan.scoring import LinearisedModel


@dataclass(frozen=True)
class DrawEnsemble:
    """The fit's draws as an ensemble: centred predictions of every candidate run, centred ln T* at each target."""

    predictions: np.ndarray  # (M, C) each draw's metric at each candidate, minus the mean over draws
    locations: np.ndarray  # (M, K) each draw's ln T* at each target, minus the mean over draws
    noise: float  # the fit's noise level (metric units) of one run

    @classmethod
    def of(cls, model: LinearisedModel, shared: bool, candidate_group: np.ndarray, candidate_log_teacher: np.ndarray,
           target_groups: Sequence[int]) -> "DrawEnsemble":
        """From a ``capgap.plan.scoring.LinearisedModel``: the curves of the asymmetry choice ``shared`` at each draw.
        Draws whose curve cannot be evaluated at some candidate are left out."""
        from capgap.fit.onestage import curve_columns

        variant = model.variants[shared]
        u = candidate_log_teacher[None, :] - model.location[:, candidate_group]
        left, right = curve_columns(u, variant.curve)
        coefficients = variant.coefficients[:, candidate_group, :]
        predictions = coefficients[..., 0] + coefficients[..., 1] * left + coefficients[..., 2] * right
        locations = model.location[:, list(target_groups)]
        usable = np.isfinite(predictions).all(axis=1) & np.isfinite(locations).all(axis=1)
        predictions, locations = predictions[usable], locations[usable]
        return cls(predictions=predictions - predictions.mean(axis=0), locations=locations - locations.mean(axis=0),
                   noise=float(model.noise))

    @property
    def usable(self) -> bool:
        """Enough draws to estimate a covariance from, and a noise level to weigh runs by."""
        return self.predictions.shape[0] >= 8 and self.noise > 0

    def variance(self, design: Sequence[int]) -> np.ndarray:
        """(K,): the expected variance of ln T* at each target once the candidate runs ``design`` (indices, repeats
        allowed: each a run with its own noise) are measured."""
        m = self.predictions.shape[0]
        now = (self.locations**2).sum(axis=0) / (m - 1)
        if not len(design):
            return now
        y = self.predictions[:, list(design)]
        covariance = y.T @ y / (m - 1) + self.noise**2 * np.eye(len(design))
        cross = y.T @ self.locations / (m - 1)  # (B, K)
        explained = np.einsum("bk,bk->k", cross, np.linalg.solve(covariance, cross))
        return np.maximum(now - explained, 0.0)
