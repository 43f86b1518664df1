"""The planner's ensemble score (capgap.plan.ensemble): exact on a linear-Gaussian model, and what it changes."""

from __future__ import annotations

import numpy as np
import pytest

from capgap.plan.ensemble import DrawEnsemble
from capgap.plan.planner import plan_runs
from capgap.plan.records import ENSEMBLE_METHOD, METHOD
from capgap.runs.synthetic import synthetic_runs
from capgap.sizes.ladders import LadderModel

S = 100_000_000
LADDER = [LadderModel(name=f"T{i:02d}", params=int(S * m)) for i, m in enumerate(np.geomspace(1.25, 200, 16))]


def test_the_ensemble_update_is_the_exact_posterior_variance_of_a_linear_gaussian_model() -> None:
    # ln T* = theta ~ N(0, tau^2); a run at candidate c measures x_c * theta + noise. The posterior variance after
    # runs R is 1 / (1 / tau^2 + sum_R x_c^2 / noise^2), whatever the order and with repeats counted each.
    rng = np.random.default_rng(0)
    tau, noise, x = 0.7, 0.05, np.array([0.0, 0.02, 0.1, 0.3])
    theta = tau * rng.standard_normal(20_000)
    predictions, locations = theta[:, None] * x[None, :], theta[:, None]
    ensemble = DrawEnsemble(predictions=predictions - predictions.mean(0), locations=locations - locations.mean(0),
                            noise=noise)
    for design in ([], [0], [1], [2, 2], [1, 3], [3, 3, 3, 1]):
        exact = 1.0 / (1.0 / tau**2 + sum(x[c] ** 2 for c in design) / noise**2)
        assert ensemble.variance(design)[0] == pytest.approx(exact, rel=0.05), design
    assert ensemble.variance([0])[0] == pytest.approx(ensemble.variance([])[0])  # a run that predicts nothing: no gain


def test_the_fitted_planner_measures_the_edge_rung_the_draws_disagree_on() -> None:
    # The optimum at 1.6x, one rung (1.25x) below it, asymmetric curves: the fit's interval reaches well below the
    # ladder. The Fisher score alone keeps to 1.75x and 4.84x, where the draws already agree (at a draw below the
    # ladder no design is credited anything); with the ensemble score the planner measures the smallest teacher,
    # which tells the draws apart.
    import capgap.plan.search as search

    rungs = [0, 1, 1, 1, 2, 3, 3, 4, 4, 6, 9, 12, 15]
    runs = synthetic_runs(ratio=1.6, students=[S], teachers=[LADDER[i].params for i in rungs], noise=0.02,
                          curvature=0.05, asymmetry=2.0, seed=2)
    plan = plan_runs(runs, [S], LADDER, 4, bootstrap=100)
    assert plan.start == "runs" and plan.before[0].low < LADDER[0].params and plan.method == ENSEMBLE_METHOD
    assert LADDER[0].params in [r.teacher_params for r in plan.runs], [r.teacher_params / S for r in plan.runs]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(search, "_ensemble", lambda *args: None)  # the Fisher score alone
        fisher = plan_runs(runs, [S], LADDER, 4, bootstrap=100)
    assert LADDER[0].params not in [r.teacher_params for r in fisher.runs] and fisher.method == METHOD
    assert plan_runs([], [S], LADDER, 4).method == METHOD  # a cold start has no fitted draws: the Fisher score
