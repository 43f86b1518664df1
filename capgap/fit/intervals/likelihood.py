"""Likelihood intervals of the one-stage model: draws of the search point from the profile likelihood (group
parameters profiled out), tempered by a Bartlett-type factor, by adaptive importance sampling."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from capgap.fit.solver import derivatives, difference_offsets, minimize_batch
from capgap.runs.groups import RunGroups
from capgap.fit.intervals.draws import IntervalDraws
from capgap.laws.base import BootstrapReport
from capgap.fit.onestage import OneStageFit

BARTLETT_SIMULATIONS = 64  # simulated data sets behind the likelihood's temper factor
TEMPER_COMB = np.linspace(-0.8, 0.8, 17)  # ln units: starts of the simulations' free refits
PROPOSALS = 4000  # likelihood sampler: proposals per round
SAMPLER_ROUNDS = 3  # ... rounds at most of adapting the proposal to the weighted draws
PROPOSAL_DF = 4  # Student-t proposal: heavy tails reach a second basin
PROPOSAL_INFLATION = 1.5  # proposal spread over the likelihood's own
GOOD_EFFECTIVE_SHARE = 0.3  # an effective sample this large a share of the proposals ends the adaptation
UNIFORM_SHARE = 0.2  # of the proposals drawn uniformly over the search box
_CHUNK = 1000  # proposals evaluated per batch (memory: a few (chunk, n) arrays)


def _hessian(objective: Callable[[np.ndarray], np.ndarray], phi: np.ndarray, step: float = 1e-3) -> np.ndarray:
    """Central-difference Hessian of a batched objective at one point, all evaluations in one batch."""
    values = objective(np.vstack([phi, phi + difference_offsets(phi.size, step)]))
    return derivatives(values[None, 1:], values[:1], step, phi.size)[1][0]


def likelihood_temper(groups: RunGroups, point: OneStageFit, rng: np.random.Generator,
                      n_sims: int = BARTLETT_SIMULATIONS) -> float:
    """How much the likelihood ratio of theta overstates the evidence here: E[W] / dim(theta), at least 1.

    Data sets are simulated from the fit (its fitted values plus Gaussian noise of its residual
    scale). In each, the model is refitted freely (from a fine comb of locations either side of
    the fit, the best refined) and with theta held at the fit's value (the simulation's truth),
    and W = 2·(F_held − F_free) / sigma². Where the likelihood of the location has several
    basins, W runs above what chi² says; dividing the log likelihood by this Bartlett-type
    factor widens the intervals to match. On the calibration designs it is mostly 1.
    """
    space = point.space
    n = groups.n_runs
    fitted = point.profile.fitted[0]
    y = fitted[None, :] + point.noise * rng.standard_normal((n_sims, n))
    low, high = space.box()

    def free(phi: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return space.evaluate(groups, phi, y[rows], point.delta).objective

    # Starts along the location, a fine comb either side of the fit: the other basins lie there.
    grid = np.array([np.r_[space.shift(point.theta[None, :], by)[0], point.curve] for by in TEMPER_COMB])
    values = np.empty((n_sims, grid.shape[0]))
    per_chunk = max(1, _CHUNK // n_sims)
    for start in range(0, grid.shape[0], per_chunk):
        block = grid[start:start + per_chunk]
        points = np.repeat(block[None, :, :], n_sims, axis=0).reshape(-1, grid.shape[1])
        rows = np.repeat(np.arange(n_sims), block.shape[0])
        values[:, start:start + block.shape[0]] = free(points, rows).reshape(n_sims, block.shape[0])
    best = grid[np.argmin(np.where(np.isfinite(values), values, np.inf), axis=1)]
    solved = np.empty_like(best)
    f_free = np.full(n_sims, np.inf)
    for start in (best, np.broadcast_to(point.phi, best.shape)):  # the grid's best and the fit itself
        candidate, _ = minimize_batch(free, start, n_sims, low, high)
        value = free(candidate, np.arange(n_sims))
        better = value < f_free
        solved[better], f_free[better] = candidate[better], value[better]
    rest = space.n_theta
    if space.n_curve:
        def held(curve: np.ndarray, rows: np.ndarray) -> np.ndarray:
            phi = np.hstack([np.broadcast_to(point.theta, (curve.shape[0], rest)), curve])
            return space.evaluate(groups, phi, y[rows], point.delta).objective

        curves, _ = minimize_batch(held, point.curve, n_sims, low[rest:], high[rest:])
        f_held = held(curves, np.arange(n_sims))
    else:
        f_held = free(np.broadcast_to(point.phi, (n_sims, point.phi.size)), np.arange(n_sims))
    fits = space.evaluate(groups, solved, y, point.delta).fitted
    sigma2 = np.sum((y - fits) ** 2, axis=1) / point.df
    w = 2.0 * np.maximum(f_held - f_free, 0.0) / sigma2
    w = w[np.isfinite(w)]
    return float(max(1.0, np.mean(w) / rest)) if w.size else 1.0


@dataclass(frozen=True)
class LikelihoodDraws:
    """Draws (B, P + n_curve) of the search point from its likelihood, and how well the sampler did."""

    draws: np.ndarray
    temper: float  # the Bartlett-type factor the log likelihood was divided by
    failed: int  # proposals whose objective was not finite (weight zero), said in the report
    effective: float  # effective sample size of the final importance weights
    better: np.ndarray | None = None  # a search point that fits better than the point fit (no draws then)


def likelihood_draws(groups: RunGroups, point: OneStageFit, n_draws: int, rng: np.random.Generator,
                     proposals: int = PROPOSALS, rounds: int = SAMPLER_ROUNDS, inflation: float = 1.0,
                     temper: float | None = None) -> LikelihoodDraws:
    """Draws of (theta, shape) weighted by the likelihood exp(−(F − F_min) / sigma²).

    F is the Huber objective (≈ half the residual sum of squares) with the group baselines and
    curvatures profiled out, sigma² the residual variance over the degrees of freedom left;
    theta and the far shape get flat priors inside their box (the shape is integrated over). Sampling is importance
    sampling from a Student-t proposal around the fit, adapted to the weighted draws for a few
    rounds; the draws are a resample of the last round by weight. Their percentiles are
    likelihood intervals that stay honest when the likelihood is skewed or has a second basin,
    at the cost of a few thousand objective evaluations (no refit per resample). The log likelihood
    is divided by ``likelihood_temper``'s Bartlett-type factor first, and by ``inflation`` where the model
    does not follow the runs (capgap.fit.lack_of_fit).
    """
    space = point.space
    low, high = space.box()

    def objective(phi: np.ndarray) -> np.ndarray:
        return space.evaluate(groups, phi, groups.badness, point.delta).objective

    temper = likelihood_temper(groups, point, rng) if temper is None else temper  # a retry reuses its factor
    sigma2 = point.noise**2 * temper * inflation
    base = float(point.profile.objective[0])
    mean = point.phi.copy()
    hess = _hessian(objective, mean)
    values, vectors = np.linalg.eigh((hess + hess.T) / 2.0)
    width = high - low
    # A direction the likelihood barely constrains (the far shape's alpha when s is near 0) gets the box's
    # own extent along it, not an infinite variance, nor the widest box of any coordinate: that would put
    # nearly every proposal outside the box and leave the sampler a handful of effective draws.
    extent = np.abs(vectors).T @ width
    # A negative eigenvalue (a point on a bound of the box, where the objective still falls outward) is a curvature
    # of that size all the same: flooring it by the box extent alone sent most proposals far off along it.
    scale = np.sqrt(sigma2 / np.maximum(np.abs(values), sigma2 / np.maximum(extent**2, 1e-12)))
    cov = (vectors * scale**2) @ vectors.T * PROPOSAL_INFLATION**2
    failed = 0
    from scipy.special import gammaln

    d = mean.size
    log_uniform = -float(np.sum(np.log(width)))
    for _ in range(rounds):
        chol = np.linalg.cholesky(cov + 1e-12 * np.eye(d))
        # Defensive mixture: mostly a Student-t around the current guess, partly uniform over the box, so
        # that directions the likelihood leaves flat (the far shape of a parabola) never get huge weights.
        from_box = rng.random(proposals) < UNIFORM_SHARE
        z = rng.standard_normal((proposals, d))
        chi = rng.chisquare(PROPOSAL_DF, size=(proposals, 1)) / PROPOSAL_DF
        phi = np.where(from_box[:, None], low + rng.random((proposals, d)) * width, mean + (z / np.sqrt(chi)) @ chol.T)
        inside = np.all((phi >= low) & (phi <= high), axis=1)
        f = np.full(proposals, np.inf)
        for start in range(0, proposals, _CHUNK):
            rows = np.flatnonzero(inside[start:start + _CHUNK]) + start
            if rows.size:
                f[rows] = objective(phi[rows])
        solved = np.isfinite(f)
        failed = int((inside & ~solved).sum())
        # Better by a twentieth of a log-likelihood unit or more: that moves the weights, not just rounding.
        if solved.any() and f[solved].min() < base - 0.05 * sigma2:
            # The sampler found a better fit than the point fit: say so, the caller refits from there.
            best = np.flatnonzero(solved)[np.argmin(f[solved])]
            return LikelihoodDraws(draws=np.empty((0, d)), temper=temper, failed=failed,
                                   effective=0.0, better=phi[best])
        mahalanobis = np.sum(np.linalg.solve(chol, (phi - mean).T) ** 2, axis=0)
        log_t = (gammaln((PROPOSAL_DF + d) / 2) - gammaln(PROPOSAL_DF / 2) - 0.5 * d * np.log(PROPOSAL_DF * np.pi)
                 - np.sum(np.log(np.diag(chol))) - 0.5 * (PROPOSAL_DF + d) * np.log1p(mahalanobis / PROPOSAL_DF))
        log_q = np.logaddexp(np.log1p(-UNIFORM_SHARE) + log_t, np.log(UNIFORM_SHARE) + log_uniform)
        log_w = np.where(solved, -(f - base) / sigma2 - log_q, -np.inf)
        weights = np.exp(log_w - np.max(log_w))
        weights /= weights.sum()
        effective = 1.0 / np.sum(weights**2)
        if effective >= GOOD_EFFECTIVE_SHARE * proposals:
            break  # the proposal already matches the likelihood well: no need to adapt it
        if effective < 10 * d:
            # A handful of effective points cannot estimate a covariance: widen the proposal instead.
            cov = cov * 4.0
            continue
        centred = phi - weights @ phi
        mean = weights @ phi
        cov = (centred * weights[:, None]).T @ centred * PROPOSAL_INFLATION**2 + 1e-10 * np.diag(width**2 + 1e-12)
    effective = float(1.0 / np.sum(weights**2))
    # Systematic resampling: n_draws equally spaced points through the cumulative weights.
    positions = (rng.random() + np.arange(n_draws)) / n_draws
    picked = np.minimum(np.searchsorted(np.cumsum(weights), positions), proposals - 1)
    return LikelihoodDraws(draws=phi[picked], temper=temper, failed=failed, effective=effective)


MIN_EFFECTIVE_DRAWS = 100
FALLBACK_RESAMPLES = 200  # residual-bootstrap refits where the likelihood sampler collapses ...
RETRY_PROPOSALS = 4  # ... even after one more try with this many times its proposals


def likelihood_intervals(groups: RunGroups, point: OneStageFit, n: int, rng: np.random.Generator, inflation: float,
                         fallback: bool = True, temper: float | None = None) -> tuple[IntervalDraws, OneStageFit]:
    """The likelihood method (an IntervalMethod, what capgap ships): draws from the tempered profile likelihood.

    ``fallback``: where the sampler collapses, refit residual-bootstrap resamples instead (False: keep its few
    effective draws, enough to mark where a checking model puts the optimum). ``temper``: the Bartlett-type factor
    where already known (a checking model takes the answering model's), else simulated. A sampler that finds a
    better fit than the point fit moves the point fit there first.
    """
    from capgap.fit.intervals.bootstrap import bootstrap_intervals
    from capgap.fit.point_fit import refine

    proposals = PROPOSALS
    for _ in range(4):
        sampled = likelihood_draws(groups, point, n, rng, proposals=proposals, inflation=inflation, temper=temper)
        temper = sampled.temper
        if sampled.better is not None:
            point = refine(groups, point, sampled.better)  # a better fit than the optimiser's: move there, retry
        elif sampled.effective < MIN_EFFECTIVE_DRAWS and proposals == PROPOSALS and fallback:
            # A likelihood curved like a banana (a far shape that matters only away from the parabola) starves the
            # adapted proposal: four times as many proposals, once, before the slow bootstrap. (A checking model
            # without the fallback keeps its few effective draws: they mark where it puts the optimum.)
            proposals = RETRY_PROPOSALS * PROPOSALS
        else:
            break
    notes = []
    if sampled.better is not None:
        notes.append("the likelihood sampler kept finding better fits than the optimiser: no interval")
    if sampled.failed:
        notes.append(f"{sampled.failed} likelihood proposals could not be evaluated and got no weight")
    if sampled.better is None and sampled.effective < MIN_EFFECTIVE_DRAWS and fallback:
        # Too few effective draws to read percentiles from: the slower residual bootstrap stands in.
        # Each resample is a refit: at most FALLBACK_RESAMPLES of them, so a collapsed sampler costs seconds, not
        # minutes; percentiles of a 90% interval from a few hundred resamples are steady enough.
        resamples = min(n, FALLBACK_RESAMPLES)
        return bootstrap_intervals(groups, point, resamples, rng, inflation,
                                   why=f" (the likelihood sampler's effective sample was {sampled.effective:.0f}; "
                                       f"{resamples} resamples)")
    report = BootstrapReport(method="profile-likelihood sampling (importance-weighted, Bartlett-tempered)",
                             resamples=n, failed=sampled.failed, effective=round(sampled.effective, 1),
                             proposals=proposals, temper=round(sampled.temper, 3))
    return IntervalDraws(sampled.draws, report, notes), point

