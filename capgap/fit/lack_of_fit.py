"""Does the curve model follow the runs? Residuals against the noise, before any interval is drawn.

Two tests, whichever the runs allow:

* **pure error** (repeated seeds of one student-teacher pair): the classic lack-of-fit F test. The
  spread between repeats measures the noise alone; residuals about the fitted curve well beyond it
  are systematic misfit. F = (SS_lack / df_lack) / (SS_pure / df_pure).
* **runs of signs** (no repeats): along ln T within each group, residuals of a curve that does
  not follow the data come in long runs of one sign. The Wald-Wolfowitz count of sign changes,
  pooled over groups, gives a z score.

A misfit shared by the repeats of one teacher does not average away over those repeats: it may be
the curve model's, or each teacher's own quality (one pretraining run per teacher) scattering about
the curve more than repeated distillations from it show. Either way the curve is informed by one
deviation per teacher, not per run, so where a test fires the likelihood's noise variance is
raised to the lack-of-fit mean square (pure error: by MS_lack over the pooled residual variance,
at most the number of repeats) or multiplied by (1 + rho) / (1 - rho), rho the lag-one correlation of
neighbouring residuals (runs of signs), and the fit's first warning says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from capgap.runs.groups import RunGroups
from capgap.fit.one_sided import pure_error

SIGNIFICANCE = 0.01  # a lack-of-fit test fires below this p-value


@dataclass(frozen=True)
class LackOfFit:
    """The test run, its p-value, and how much wider the intervals must be (1: not at all)."""

    test: str  # "pure error" or "runs of signs" or "free optima" or "none"
    p_value: float | None
    inflation: float  # factor on the likelihood's noise variance
    law: str | None = None  # the law family, for the free-optima test: its T*(S, D) is what does not follow

    @property
    def fires(self) -> bool:
        return self.p_value is not None and self.p_value < SIGNIFICANCE

    def warning(self, applied: float | None = None) -> str | None:
        """The sentence for the law file, or None where the test does not fire. ``applied``: the inflation the fit
        applied in the end (the largest of its tests'), which this sentence reports; its own by default."""
        if not self.fires:
            return None
        factor = np.sqrt(self.inflation if applied is None else applied)
        if self.test == "free optima":
            return (f"lack of fit: the {self.law} law's T*(S, D) does not follow the students' own optima (each "
                    f"student's optimum fitted freely fits the runs markedly better: F test, p = {self.p_value:.2g}), "
                    "so T* is biased where the law bends away from them; the intervals are widened by a factor of "
                    f"{factor:.2g} for it; compare another --law, or read each student's own optimum "
                    "(`capgap fit` lists them)")
        return (f"lack of fit: the curve model does not follow the runs ({self.test} test, p = {self.p_value:.2g}): "
                "its misfit is systematic, the curve's or each teacher's own quality, so T* may be biased; the "
                f"intervals are widened by a factor of {factor:.2g} for it; measure more teachers "
                "near the optimum, or compare another --law")


def lack_of_fit(groups: RunGroups, fitted: np.ndarray, df: int) -> LackOfFit:
    """Test the fitted values (n,) of a model leaving ``df`` residual degrees of freedom."""
    from scipy import stats

    residual = groups.badness - fitted
    pure, pure_df = pure_error(groups)
    lack_df = df - pure_df
    if pure_df >= 2 and lack_df >= 1 and pure > 0:
        lack = max(float(np.sum(residual**2)) - pure, 0.0)
        ratio = (lack / lack_df) / (pure / pure_df)
        p = float(stats.f.sf(ratio, lack_df, pure_df))
        pooled = float(np.sum(residual**2)) / df
        return LackOfFit("pure error", p, max(1.0, (lack / lack_df) / pooled) if p < SIGNIFICANCE else 1.0)
    return _runs_of_signs(groups, residual)


def _runs_of_signs(groups: RunGroups, residual: np.ndarray) -> LackOfFit:
    """The Wald-Wolfowitz runs test of residual signs along ln T, pooled over groups (one-sided: too few runs)."""
    from scipy import stats

    observed = expected = variance = 0.0
    lag_products, squares = 0.0, 0.0
    for j in range(len(groups.keys)):
        members = np.flatnonzero(groups.group == j)
        order = members[np.argsort(groups.log_teacher[members], kind="stable")]
        r = residual[order]
        signs = r[np.abs(r) > 1e-12 * (1.0 + np.abs(groups.badness[order]))] > 0
        n_plus, n_minus = int(signs.sum()), int((~signs).sum())
        n = n_plus + n_minus
        if n_plus == 0 or n_minus == 0 or n < 3:
            continue
        observed += 1 + int(np.sum(signs[1:] != signs[:-1]))
        expected += 1 + 2.0 * n_plus * n_minus / n
        variance += 2.0 * n_plus * n_minus * (2.0 * n_plus * n_minus - n) / (n * n * (n - 1))
        lag_products += float(np.sum(r[1:] * r[:-1]))
        squares += float(np.sum(r * r))
    if variance <= 0:
        return LackOfFit("none", None, 1.0)
    z = (observed - expected) / np.sqrt(variance)
    p = float(stats.norm.cdf(z))
    rho = min(max(lag_products / squares, 0.0), 0.8) if squares > 0 else 0.0
    # Neighbouring residuals correlated by rho: the variance of a local mean grows by (1 + rho) / (1 - rho).
    return LackOfFit("runs of signs", p, (1.0 + rho) / (1.0 - rho) if p < SIGNIFICANCE else 1.0)


def location_misfit(groups: RunGroups, point, law: str) -> LackOfFit:
    """Does the law's location T*(S, D) follow the groups' own optima? An F test of the law against the same
    curves with every group's optimum free (``point_fit.free_location_objective``): G − P more parameters.

    Where it fires, the likelihood's noise variance is raised by the F ratio: the law's misfit to the optima
    then counts as noise, so an interval widens in step with how far the optima scatter about the law."""
    from scipy import stats

    from capgap.fit.point_fit import free_location_objective

    extra = len(groups.keys) - point.space.n_theta
    free_df = point.df - extra
    if extra < 1 or free_df < 1:
        return LackOfFit("free optima", None, 1.0, law)
    law_objective = float(point.profile.objective[0])
    free_objective = free_location_objective(groups, point)
    if not free_objective > 0:
        return LackOfFit("free optima", None, 1.0, law)
    # The Huber objective is about half the residual sum of squares, on both sides of the ratio alike.
    ratio = ((law_objective - free_objective) / extra) / (free_objective / free_df)
    p = float(stats.f.sf(ratio, extra, free_df))
    return LackOfFit("free optima", p, max(1.0, ratio) if p < SIGNIFICANCE else 1.0, law)
