"""The ratio, linear and power laws and fit_law: planted laws recovered, censoring, auto, calibration, files."""

import json
import warnings

import pytest

from capgap.errors import InputError
from capgap.lawfit import fit_law
from capgap.laws import default_law_path, load_law, shipped_law_path
from capgap.laws.base import FitOptions, UnfittedLawWarning, save_law
from capgap.laws import linear, power, ratio
from capgap.synthetic import synthetic_runs

STUDENTS = [20_000_000, 45_000_000, 100_000_000, 220_000_000, 500_000_000]
# An absolute ladder shared by all students (Pythia-like spacing).
LADDER = [30_000_000, 60_000_000, 120_000_000, 250_000_000, 500_000_000, 1_000_000_000, 2_000_000_000, 4_000_000_000]


def runs_for(**kwargs):
    kwargs.setdefault("with_teacher_loss", False)  # keep the dsl law out of auto: these tests are about the curves
    return synthetic_runs(**kwargs)


@pytest.mark.parametrize("planted, noise, teachers, multiples", [
    (1.5, 0.002, None, (1.05, 1.2, 1.4, 1.7, 2.1, 2.6, 3.2)),
    (2.5, 0.01, None, (1.2, 1.6, 2.2, 3.0, 4.0, 5.5, 7.5)),
    (4.0, 0.005, None, (1.2, 1.6, 2.2, 3.0, 4.0, 5.5, 7.5)),
    (2.5, 0.004, LADDER, ()),
])
def test_ratio_law_recovers_planted_ratio(planted, noise, teachers, multiples):
    runs = runs_for(ratio=planted, students=STUDENTS, teachers=teachers, noise=noise, repeats=2, seed=11,
                    multiples=multiples)
    law = ratio.fit(runs, FitOptions(bootstrap=300))
    r = law.file.coefficients["r"]
    low, high = law.file.intervals["r"]
    assert r == pytest.approx(planted, rel=0.06)
    assert low < r < high and high / low < 1.3
    estimate = law.optimal_teacher(1e8)
    assert estimate.estimate == pytest.approx(r * 1e8)
    assert estimate.low == pytest.approx(low * 1e8, rel=1e-6) and estimate.high == pytest.approx(high * 1e8, rel=1e-6)


def test_power_law_recovers_a_superlinear_exponent():
    runs = runs_for(optimum=lambda s: 2.0 * s * (s / 1e8) ** 0.3, students=[1e7, 3e7, 1e8, 3e8, 1e9],
                    noise=0.003, repeats=2, seed=2)
    law = power.fit(runs, FitOptions(bootstrap=300))
    p_low, p_high = law.file.intervals["p"]
    assert law.file.coefficients["p"] == pytest.approx(1.3, abs=0.06)
    assert p_low < 1.3 < p_high and p_low > 1.0  # the data say "not linear"
    assert law.optimal_teacher(1e8).estimate == pytest.approx(2e8, rel=0.08)


def test_power_law_on_linear_data_has_p_near_one():
    law = power.fit(runs_for(ratio=3.0, students=STUDENTS, noise=0.003, repeats=2, seed=4), FitOptions(bootstrap=300))
    low, high = law.file.intervals["p"]
    assert low < 1.0 < high


def test_linear_law_recovers_slope_and_offset():
    runs = runs_for(optimum=lambda s: 2.0 * s + 1e8, students=[2e7, 5e7, 1e8, 2e8, 5e8], noise=0.002, repeats=2, seed=6)
    law = linear.fit(runs, FitOptions(bootstrap=200))
    assert law.file.coefficients["a"] == pytest.approx(2.0, rel=0.1)
    assert law.file.coefficients["b"] == pytest.approx(1e8, rel=0.25)
    assert law.optimal_teacher(3e8).estimate == pytest.approx(7e8, rel=0.05)


def test_censored_optima_act_as_bounds_not_points():
    # The shared ladder stops at 1B: the 500M student's optimum (1.5B) is beyond it.
    students = [20_000_000, 45_000_000, 100_000_000, 220_000_000, 500_000_000]
    ladder = [30_000_000, 50_000_000, 80_000_000, 130_000_000, 200_000_000, 330_000_000, 550_000_000, 750_000_000,
              1_000_000_000]
    runs = runs_for(ratio=3.0, students=students, teachers=ladder, noise=0.002, repeats=2, seed=8)
    law = fit_law(runs, law="ratio", bootstrap=200)
    censored = [o for o in law.file.optima if o.censored]
    assert [(o.student_params, o.censored, o.teacher_params) for o in censored] == [(500_000_000, "at_least", 1e9)]
    assert law.file.coefficients["r"] == pytest.approx(3.0, rel=0.06)  # a point at 1B would pull r towards 2.5
    assert law.file.diagnostics["goodness"]["censored_respected"] == 1
    assert law.file.diagnostics["optima"]["censored"] == 1


def test_all_optima_censored_says_which_way_to_extend_the_ladder():
    runs = runs_for(ratio=2.5, students=STUDENTS, multiples=(1.1, 1.3, 1.5, 1.7), noise=0.001)
    with pytest.raises(InputError, match="does not bracket the optimum.*add teachers above 850M"):
        fit_law(runs, bootstrap=50)


def test_power_needs_two_measured_student_sizes():
    runs = runs_for(ratio=2.5, students=[100_000_000], noise=0.001)
    with pytest.raises(InputError, match="power law needs measured .* 2 or more student sizes; found 1"):
        fit_law(runs, law="power", bootstrap=0)
    assert fit_law(runs, law="ratio", bootstrap=0).file.coefficients["r"] == pytest.approx(2.5, rel=0.05)


def test_auto_prefers_power_for_superlinear_data_and_reports_the_margin():
    runs = runs_for(optimum=lambda s: 2.0 * s * (s / 1e8) ** 0.35, students=[1e7, 3e7, 1e8, 3e8, 1e9],
                    noise=0.003, repeats=2, seed=2)
    law = fit_law(runs, bootstrap=100)
    cv = law.file.diagnostics["cv"]
    assert law.name == "power" and cv["winner"] == "power"
    assert cv["scores"]["power"] < cv["scores"]["ratio"]
    assert cv["margin"] == pytest.approx(min(s for n, s in cv["scores"].items() if n != "power") - cv["scores"]["power"])
    assert cv["folds"] == 5 and "dsl" in cv["excluded"]  # these runs carry no teacher_loss


def test_auto_mostly_prefers_ratio_for_proportional_data():
    # CV with five student sizes is noisy; the one-standard-error rule makes the one-parameter law the usual pick.
    winners = []
    for seed in range(10):
        law = fit_law(runs_for(ratio=2.5, students=STUDENTS, noise=0.002, repeats=2, seed=seed), bootstrap=0)
        cv = law.file.diagnostics["cv"]
        assert cv["winner"] == law.name and set(cv["scores"]) == {"ratio", "power", "linear"}
        assert law.optimal_teacher(1e8).estimate == pytest.approx(2.5e8, rel=0.05)  # whichever wins agrees
        winners.append(law.name)
    assert winners.count("ratio") >= 7


def test_fit_law_validates_metric_and_direction():
    runs = runs_for(students=STUDENTS[:2], noise=0.001)
    with pytest.raises(InputError, match="metric 'lambada_acc' is in none of the runs; metrics present: eval_loss"):
        fit_law(runs, metric="lambada_acc")
    odd = [r.model_copy(update={"metrics": {"my_metric": r.metrics["eval_loss"]}, "run_id": r.run_id + "x"}) for r in runs]
    with pytest.warns(UserWarning, match="direction of metric 'my_metric' is unknown; taking lower"):
        law = fit_law(odd, law="ratio", bootstrap=0)
    assert law.file.metric == "my_metric" and law.file.direction == "lower"
    with pytest.raises(InputError, match="no runs of family 'gpt2'; families present: synthetic"):
        fit_law(runs, family="gpt2")
    with pytest.raises(InputError, match="law 'cubic' is unknown"):
        fit_law(runs, law="cubic")


def test_higher_is_better_metric_fits_the_same_law():
    kwargs = dict(ratio=2.5, students=STUDENTS, noise=0.003, repeats=2, seed=9)
    lower = fit_law(runs_for(**kwargs), law="ratio", bootstrap=0)
    higher = fit_law(runs_for(metric="lambada_acc", **kwargs), law="ratio", bootstrap=0)
    assert higher.file.direction == "higher"
    assert higher.file.coefficients["r"] == pytest.approx(lower.file.coefficients["r"], rel=1e-6)


def test_law_file_round_trip(tmp_path):
    law = fit_law(runs_for(ratio=2.5, students=STUDENTS, noise=0.003, seed=1), law="power", bootstrap=100)
    path = tmp_path / "law.json"
    save_law(law, path)
    document = json.loads(path.read_text())
    for key in ("law", "coefficients", "intervals", "optima", "size_measure", "metric", "n_runs", "student_range", "provenance"):
        assert key in document
    assert document["student_range"] == [20_000_000, 500_000_000]
    again = load_law(path)
    assert again.optimal_teacher(3e8) == law.optimal_teacher(3e8)


def test_shipped_reference_is_the_unfitted_published_reading_and_says_so():
    with pytest.warns(UnfittedLawWarning, match="not fitted from runs.*2311.07052"):
        law = load_law(shipped_law_path("reference"))
    estimate = law.optimal_teacher(1.3e9)
    assert law.name == "ratio" and estimate.estimate == pytest.approx(2.5 * 1.3e9)
    assert estimate.low is None and estimate.high is None and not law.file.fitted


def test_fitted_law_loads_without_warning(tmp_path):
    law = fit_law(runs_for(students=STUDENTS, noise=0.003), law="ratio", bootstrap=20)
    save_law(law, tmp_path / "law.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_law(tmp_path / "law.json")


def test_interval_coverage_is_roughly_nominal():
    """Over repeated synthetic draws the true T*(100M) lies in the 90% interval about 90% of the time."""
    draws, hits = 100, 0
    for seed in range(draws):
        runs = runs_for(ratio=2.5, students=STUDENTS, noise=0.01, seed=1000 + seed)
        estimate = fit_law(runs, law="ratio", bootstrap=200, seed=seed).optimal_teacher(1e8)
        hits += estimate.low <= 2.5e8 <= estimate.high
    assert 0.82 <= hits / draws <= 0.98  # 0.90 +- 2.7 binomial standard errors; bench/fit_coverage.py draws more


@pytest.mark.parametrize("family", [ratio.RatioLaw, power.PowerLaw, linear.LinearLaw])
def test_batched_solver_agrees_with_scipy_lbfgsb(family):
    """The vectorised Gauss-Newton used for the fit and the bootstrap reaches L-BFGS-B's minimum."""

    from capgap.fit import minimize_multistart
    from capgap.laws.curve import _element_loss, _fit_theta
    from capgap.optima import analyse_optima

    ladder = [30_000_000, 50_000_000, 80_000_000, 130_000_000, 200_000_000, 330_000_000, 550_000_000, 750_000_000,
              1_000_000_000]
    runs = runs_for(ratio=3.0, students=STUDENTS, teachers=ladder, noise=0.004, seed=5)
    analysis = analyse_optima(runs, FitOptions(bootstrap=100))
    assert (analysis.status != 0).any()  # a censored optimum takes part
    u = analysis.log_student - analysis.log_student.mean()
    y = analysis.log_optimum - analysis.log_student.mean()

    def objective(theta):
        return float(_element_loss((family.log_curve(theta, u) - y) / analysis.log_sigma, analysis.status)[0].sum())

    reference = minimize_multistart(objective, family.starts, bounds=family.bounds)
    ours = _fit_theta(family, u, y, analysis.log_sigma, analysis.status)
    assert objective(ours) <= reference.fun + 1e-7
    assert ours == pytest.approx(reference.x, abs=1e-3)


def test_fit_law_is_exported_and_loading_a_law_needs_no_scipy():
    import subprocess
    import sys

    import capgap

    assert capgap.fit_law is fit_law
    code = ("import sys, warnings; warnings.simplefilter('ignore'); from capgap.laws import load_law, default_law_path; "
            "load_law(default_law_path()).optimal_teacher(1e8); print('scipy' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_run_count_and_hash_cover_the_runs_the_law_comes_from():
    from capgap.laws.curve import runs_hash
    from capgap.records import RunRecord

    good = runs_for(students=STUDENTS, noise=0.003, seed=2)
    thin = [RunRecord(student_params=30_000_000, teacher_params=t, metrics={"eval_loss": 3.0}) for t in (10**8, 2 * 10**8)]
    law = fit_law([*good, *thin], law="ratio", bootstrap=0)
    assert law.file.n_runs == len(good) and law.file.runs_hash == runs_hash(good)
    assert law.file.diagnostics["optima"]["skipped_too_few_teachers"] == ["unknown unknown 30M (2 teacher sizes)"]


def test_shipped_default_is_what_the_documented_refit_command_writes(tmp_path):
    # README: capgap fit data/runs/shakespeare-ladder.jsonl --law ratio --init pruned --out data/laws/default.json
    from capgap.store import load_runs

    runs_file = default_law_path().parent.parent / "runs" / "shakespeare-ladder.jsonl"
    refit = fit_law(load_runs(runs_file), law="ratio", student_init="pruned", bootstrap=1000, seed=0)
    shipped = load_law(default_law_path())
    assert shipped.file.fitted and shipped.file.runs_hash == refit.file.runs_hash
    assert refit.file.coefficients["r"] == pytest.approx(shipped.file.coefficients["r"], rel=1e-9)
    assert refit.file.intervals["r"] == pytest.approx(shipped.file.intervals["r"], rel=1e-9)
