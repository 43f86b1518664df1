"""The dsl law family: Busbridge et al.'s distillation scaling law, published and fitted."""

import json
import math

import numpy as np
import pytest

from capgap.laws.dsl_synthetic import DEFAULT_TEACHERS, dsl_synthetic_runs
from capgap.core.errors import InputError
from capgap.fit import dsl_fit
from capgap.laws import dsl
from capgap.laws.base import FitOptions, UnfittedLawWarning, load_law, save_law

STUDENT_198M = 198e6
PUBLISHED_BEST_TEACHER_LOSS = 1.88  # the check value for a 198M student at D = 20 N


@pytest.fixture(scope="module")
def synthetic_runs():
    return dsl_synthetic_runs(seed=1)


@pytest.fixture(scope="module")
def fitted(synthetic_runs):
    return dsl_fit.fit(synthetic_runs, FitOptions(bootstrap=20, seed=0))


def test_published_law_puts_the_198m_students_best_teacher_near_1_88_nats():
    law = dsl.published_law()
    best = law.optimal_teacher_loss(STUDENT_198M)
    assert best == pytest.approx(PUBLISHED_BEST_TEACHER_LOSS, abs=0.01)
    # It is a minimum: a stronger or weaker teacher gives a worse student.
    at_best = law.predict_student_loss(STUDENT_198M, best)
    assert law.predict_student_loss(STUDENT_198M, best - 0.1) > at_best
    assert law.predict_student_loss(STUDENT_198M, best + 0.1) > at_best
    # The default tokens are 20 per student parameter.
    assert best == law.optimal_teacher_loss(STUDENT_198M, tokens=20 * STUDENT_198M)


def test_published_optimal_teacher_reaches_the_best_teacher_loss():
    law = dsl.published_law()
    estimate = law.optimal_teacher(STUDENT_198M)
    assert estimate.censored is None and estimate.low is None  # no runs behind it, no interval
    assert law.teacher_loss(estimate.estimate) == pytest.approx(law.optimal_teacher_loss(STUDENT_198M), abs=1e-6)
    assert law.file.size_measure == "nonembed" and not law.file.fitted
    assert "2502.08606" in law.file.provenance
    # Larger students want larger teachers.
    assert law.optimal_teacher(2 * STUDENT_198M).estimate > estimate.estimate


def test_unreachable_teacher_loss_is_censored_at_least():
    law = dsl.published_law()
    huge = 1e12  # its best teacher loss lies below the irreducible loss E
    assert law.optimal_teacher_loss(huge) < law.file.coefficients["E"]
    estimate = law.optimal_teacher(huge)
    assert estimate.censored == "at_least" and estimate.low is None and estimate.high is None
    assert math.isfinite(estimate.estimate)
    # The bound: beyond it a larger teacher gains the student about SATURATION_NATS at most.
    at_bound = law.predict_metric(huge, estimate.estimate)
    far_beyond = law.predict_metric(huge, 1e6 * estimate.estimate)
    assert at_bound - far_beyond == pytest.approx(dsl.SATURATION_NATS, rel=0.05)


def test_residual_functions_agree_with_the_law_and_their_jacobians():
    rng = np.random.default_rng(0)
    n = 40
    log_n, log_d = np.log(rng.uniform(1e7, 1e10, n)), np.log(rng.uniform(1e8, 1e12, n))
    log_obs, log_lt = np.log(rng.uniform(2, 4, n)), np.log(rng.uniform(1.5, 5, n))
    coef = dict(dsl.PUBLISHED, c0=1.7, f1=0.3)  # off the published point, where the transition is smooth
    lsup = dsl.supervised_loss(coef, np.exp(log_n), np.exp(log_d))
    cases = [
        (dsl.SUPERVISED, lambda th: dsl_fit._supervised_residuals(th, log_n, log_d, log_obs), np.log(lsup) - log_obs),
        (dsl.DISTILLATION, lambda th: dsl_fit._distillation_residuals(th, log_n, log_d, log_lt, np.log(lsup), log_obs),
         np.log(dsl.student_loss(coef, np.exp(log_n), np.exp(log_d), np.exp(log_lt))) - log_obs),
    ]
    for names, residuals, expected in cases:
        theta = np.array([dsl_fit._to_space(k, coef[k]) for k in names])
        r, jac = residuals(theta)
        np.testing.assert_allclose(r, expected, atol=1e-12)
        step = 1e-6
        numeric = np.column_stack([(residuals(theta + step * e)[0] - residuals(theta - step * e)[0]) / (2 * step)
                                   for e in np.eye(len(names))])
        np.testing.assert_allclose(jac, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.slow
def test_fit_recovers_the_published_optimum_and_constants(fitted):
    truth = dsl.published_law()
    assert fitted.file.size_measure == "nonembed" and fitted.file.n_runs == 144
    assert fitted.optimal_teacher_loss(STUDENT_198M) == pytest.approx(truth.optimal_teacher_loss(STUDENT_198M), abs=0.01)
    estimate = fitted.optimal_teacher(STUDENT_198M)
    true_size = truth.optimal_teacher(STUDENT_198M).estimate
    assert estimate.estimate == pytest.approx(true_size, rel=0.1)
    assert estimate.low < estimate.estimate < estimate.high
    # One draw of a 90% interval may just miss; the coverage over many draws is in bench/fit_dsl_speed.py.
    assert estimate.low / 1.05 <= true_size <= estimate.high * 1.05
    # This design (6 students x 2 token ratios x 12 teachers) frees all but the gammas.
    assert set(fitted.file.diagnostics.fixed_at_published) == {"B", "beta", "gamma", "gamma2"}
    # Well pinned by this design: the exponents, c0 and the transition's place and sharpness.
    tolerance = {"E": 0.03, "alpha": 0.07, "alpha2": 0.03, "c0": 0.03, "f1": 0.05, "d1": 0.05, "A2": 0.15}
    for name, rel in tolerance.items():
        assert fitted.file.coefficients[name] == pytest.approx(dsl.PUBLISHED[name], rel=rel), name
    # Loosely pinned: A trades off with alpha, c1 needs more weak teachers; B2 (with two token
    # ratios, D moves almost with N) is left unchecked beyond having an interval.
    for name in ("A", "beta2", "c1"):
        assert 0.5 < fitted.file.coefficients[name] / dsl.PUBLISHED[name] < 2.0, name
    assert set(fitted.file.intervals) == {*tolerance, "A", "B2", "beta2", "c1"}
    assert fitted.file.diagnostics.goodness.rmse_log < 0.005  # the noise is 0.003 in log loss


@pytest.mark.slow
def test_fitted_law_predicts_held_out_student_losses(fitted):
    # New students and tokens, noise-free: the law interpolates within 1%.
    held_out = dsl_synthetic_runs(students=(70_000_000, 300_000_000), tokens_per_param=(40.0,), noise=0.0,
                                  teacher_noise=0.0, seed=5)
    for run in held_out:
        predicted = fitted.predict_student_loss(run.student_params_nonembed, run.teacher_loss, run.tokens)
        assert predicted == pytest.approx(run.metrics["eval_loss"], rel=0.01)


def test_few_runs_hold_constants_at_published_values_and_still_find_the_optimum():
    runs = dsl_synthetic_runs(students=(100_000_000, 198_000_000, 400_000_000), tokens_per_param=(20.0,),
                              teachers=(300_000_000, 1_000_000_000, 3_000_000_000, 10_000_000_000, 30_000_000_000),
                              seed=2)
    law = dsl_fit.fit(runs, FitOptions(bootstrap=0))
    assert law.file.diagnostics.free == ["E", "A", "alpha", "A2", "c0", "d1"]
    for name in law.file.diagnostics.fixed_at_published:
        assert law.file.coefficients[name] == dsl.PUBLISHED[name]
    assert law.file.samples == [] and law.file.intervals == {}
    assert law.optimal_teacher_loss(STUDENT_198M) == pytest.approx(1.8764, abs=0.03)


def test_given_supervised_law_and_free_list_are_respected(synthetic_runs):
    runs = synthetic_runs[:48]  # two students
    supervised = {"E": 1.3, "A": 3000.0, "B": 20000.0, "alpha": 0.4, "beta": 0.45, "gamma": 0.5}
    law = dsl_fit.fit(runs, FitOptions(bootstrap=0), supervised=supervised, free=["A2", "c0"])
    for name, value in supervised.items():
        assert law.file.coefficients[name] == value
    assert law.file.diagnostics.free == ["A2", "c0"]
    assert law.file.coefficients["d1"] == dsl.PUBLISHED["d1"]
    assert law.file.coefficients["c0"] != dsl.PUBLISHED["c0"]
    assert "given by the user" in law.file.provenance
    with pytest.raises(InputError, match="unknown constant"):
        dsl_fit.fit(runs, FitOptions(bootstrap=0), free=["A2", "zeta"])


@pytest.mark.slow
def test_law_file_round_trip(fitted, tmp_path):
    path = tmp_path / "dsl.json"
    save_law(fitted, path)
    document = json.loads(path.read_text())
    assert document["law"] == "dsl" and document["size_measure"] == "nonembed"
    assert document["teacher_tokens"] == {"per_param": pytest.approx(20.0)}
    assert len(document["samples"]) == 20
    loaded = load_law(path)
    assert isinstance(loaded, dsl.DSLLaw)
    assert loaded.file.coefficients == fitted.file.coefficients
    assert loaded.optimal_teacher(STUDENT_198M) == fitted.optimal_teacher(STUDENT_198M)
    assert loaded.predict_metric(STUDENT_198M, 2e9) == fitted.predict_metric(STUDENT_198M, 2e9)


def test_published_law_round_trips_too(tmp_path):
    path = tmp_path / "published.json"
    law = dsl.published_law(dsl.TeacherTokens(common=3e11))
    save_law(law, path)
    with pytest.warns(UnfittedLawWarning, match="not fitted from runs"):
        loaded = load_law(path)
    assert loaded.teacher_tokens == dsl.TeacherTokens(common=3e11)
    assert loaded.optimal_teacher(STUDENT_198M) == law.optimal_teacher(STUDENT_198M)


def test_runs_missing_teacher_loss_or_tokens_are_refused(synthetic_runs):
    broken = [r.model_copy(update={"teacher_loss": None}) if i < 5 else r for i, r in enumerate(synthetic_runs)]
    with pytest.raises(InputError, match=r"5 of 144 runs lack teacher_loss or tokens"):
        dsl_fit.fit(broken, FitOptions(bootstrap=0))
    no_tokens = [r.model_copy(update={"tokens": None}) for r in synthetic_runs[:10]]
    with pytest.raises(InputError, match=r"10 of 10 runs lack teacher_loss or tokens"):
        dsl_fit.fit(no_tokens, FitOptions(bootstrap=0))


def test_other_bad_input_is_refused(synthetic_runs):
    with pytest.raises(InputError, match="higher-is-better"):
        dsl_fit.fit(synthetic_runs, FitOptions(metric="lambada_acc", direction="higher", bootstrap=0))
    with pytest.raises(InputError, match="metrics found: eval_loss"):
        dsl_fit.fit(synthetic_runs, FitOptions(metric="wikitext2_ppl", bootstrap=0))
    two_teachers = [r for r in synthetic_runs if r.teacher_params_nonembed in DEFAULT_TEACHERS[:2]]
    with pytest.raises(InputError, match="at least 3 distinct teachers; found 2"):
        dsl_fit.fit(two_teachers, FitOptions(bootstrap=0))
    partly = [r.model_copy(update={"extra": {}}) if i % 2 else r for i, r in enumerate(synthetic_runs)]
    with pytest.raises(InputError, match="72 of 144 runs lack teacher_tokens"):
        dsl_fit.fit(partly, FitOptions(bootstrap=0))
    with pytest.raises(InputError, match="no runs of family 'gpt2'"):
        dsl_fit.fit(synthetic_runs, FitOptions(family="gpt2", bootstrap=0))


def test_total_sizes_and_unknown_teacher_tokens_are_stated(synthetic_runs):
    bare = [r.model_copy(update={"student_params_nonembed": None, "teacher_params_nonembed": None, "extra": {}})
            for r in synthetic_runs[:48]]
    with pytest.warns(UserWarning, match="lack non-embedding sizes"):
        law = dsl_fit.fit(bare, FitOptions(bootstrap=0))
    assert law.file.size_measure == "total"
    assert "fitted on total sizes" in law.file.provenance
    assert "no run gives teacher_tokens" in law.file.provenance
    largest = max(r.teacher_params for r in bare)
    assert law.teacher_tokens == dsl.TeacherTokens(common=20.0 * largest)
    with pytest.raises(InputError, match="lack non-embedding sizes"):
        dsl_fit.fit(bare, FitOptions(bootstrap=0, size_measure="nonembed"))


def test_known_ladder_totals_convert_to_nonembed():
    from capgap.sizes.ladders import KNOWN_LADDERS

    pythia = {m.name: m for m in KNOWN_LADDERS["pythia"]}
    student = pythia["pythia-160m"]
    teachers = [pythia[n] for n in ("pythia-410m", "pythia-1b", "pythia-1.4b", "pythia-2.8b", "pythia-6.9b", "pythia-12b")]
    runs = dsl_synthetic_runs(students=(student.params_nonembed,), tokens_per_param=(20.0,),
                              teachers=[t.params_nonembed for t in teachers])
    by_nonembed = {t.params_nonembed: t.params for t in teachers}
    # Only the total counts of real Pythia models are recorded, as a user's runs might have them.
    totals_only = [r.model_copy(update={"student_params": student.params, "student_params_nonembed": None,
                                        "teacher_params": by_nonembed[r.teacher_params_nonembed],
                                        "teacher_params_nonembed": None}) for r in runs]
    law = dsl_fit.fit(totals_only, FitOptions(bootstrap=0))
    assert law.file.size_measure == "nonembed"
    assert law.file.student_range == [student.params_nonembed, student.params_nonembed]


@pytest.mark.slow
def test_capgap_fit_law_dsl_end_to_end(run_cli, tmp_path, synthetic_runs):
    from capgap.runs.store import RunStore

    store = tmp_path / "runs.jsonl"
    RunStore(store).extend(synthetic_runs)
    done = run_cli("fit", store, "--law", "dsl", "--bootstrap", "10", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["law"] == "dsl" and document["n_runs"] == 144 and document["size_measure"] == "nonembed"
    assert set(document["coefficients"]) == {*dsl.SUPERVISED, *dsl.DISTILLATION}
    assert document["student_range"] == [50e6, 1.6e9]

    bare = tmp_path / "bare.jsonl"
    RunStore(bare).extend(r.model_copy(update={"teacher_loss": None}) if i < 10 else r
                          for i, r in enumerate(synthetic_runs))
    refused = run_cli("fit", bare, "--law", "dsl")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "10 of 144 runs lack teacher_loss or tokens" in refused.stderr
    assert "for every run or for none" in refused.stderr


def test_dsl_fit_on_the_small_cpu_store_says_what_it_could_not_pin_down():
    # The case: 11 pruned runs left B2, beta2 and alpha2 at their bounds with zero-width intervals, silently.
    from capgap.fit.law_fit import fit_law
    from capgap.laws import shipped_law_path
    from capgap.runs.store import load_runs

    runs = load_runs([shipped_law_path("cpu-demo").parent.parent / "runs" / "shakespeare-ladder.jsonl"])
    law = fit_law(runs, law="dsl", student_init="pruned", bootstrap=20)
    text = " ".join(law.file.diagnostics.warnings)
    assert "at the bound of the search range" in text
    assert all(v is None or v[1] > v[0] for v in law.file.intervals.values())  # never a zero-width interval


def test_held_out_curves_read_an_older_stores_teacher_tokens_as_the_fit_does(fitted, synthetic_runs):
    # Runs of an older store kept the teacher's pretraining tokens in extra['teacher_tokens']; with assumed teacher
    # losses the held-out curve must read them as the fit did, not fall back to the law's tokens-per-parameter rule.
    bare = [r.model_copy(update={"teacher_loss": None, "teacher_tokens": None, "extra": {}}) for r in synthetic_runs[:12]]
    tokens = [5 * fitted.teacher_tokens.at(r.teacher_params) for r in bare]  # far from the law's own rule
    older = [r.model_copy(update={"extra": {"teacher_tokens": f"{t:.6g}"}}) for r, t in zip(bare, tokens)]
    field = [r.model_copy(update={"teacher_tokens": int(round(t))}) for r, t in zip(bare, tokens)]
    assert [r.teacher_token_count() for r in older] == pytest.approx(tokens, rel=1e-5)
    from_extra, from_field, by_rule = (fitted.held_out_curve(runs)[0] for runs in (older, field, bare))
    assert from_extra == pytest.approx(from_field, rel=1e-4, abs=1e-9)
    assert not np.allclose(from_extra, by_rule)
