"""Per-student optima: planted optima recovered, censoring at the ladder's edges, grouping and bad input."""

import numpy as np
import pytest

from capgap.errors import InputError
from capgap.optima import student_optima
from capgap.records import RunRecord
from capgap.synthetic import synthetic_runs

STUDENTS = [20_000_000, 100_000_000, 500_000_000]


@pytest.mark.parametrize("ratio", [1.8, 2.5, 4.0])
def test_interior_optimum_is_recovered_with_an_interval(ratio):
    runs = synthetic_runs(ratio=ratio, students=STUDENTS, multiples=(1.2, 1.6, 2.2, 3.0, 4.0, 5.5, 7.5),
                          noise=0.002, repeats=2, seed=3)
    optima = student_optima(runs, bootstrap=300)
    assert [o.student_params for o in optima] == STUDENTS
    for o in optima:
        assert o.censored is None
        assert o.teacher_params / o.student_params == pytest.approx(ratio, rel=0.08)
        assert o.low < o.teacher_params < o.high
        assert o.n_runs == 14 and len(o.teachers) == 7


def test_ladder_below_the_optimum_is_censored_at_least_the_largest_teacher():
    runs = synthetic_runs(ratio=2.5, students=STUDENTS, multiples=(1.1, 1.25, 1.4, 1.6), noise=0.001, seed=1)
    optima = student_optima(runs, bootstrap=100)
    for o in optima:
        assert o.censored == "at_least"
        assert o.teacher_params == pytest.approx(max(o.teachers))
        assert o.low is None and o.high is None  # a bound, never an invented interval


def test_ladder_above_the_optimum_is_censored_at_most_the_smallest_teacher():
    runs = synthetic_runs(ratio=2.0, students=STUDENTS, multiples=(4.0, 5.0, 6.0, 8.0), noise=0.001, seed=1)
    for o in student_optima(runs, bootstrap=100):
        assert o.censored == "at_most"
        assert o.teacher_params == pytest.approx(min(o.teachers))


def _runs(values, teachers=(10**8, 2 * 10**8, 3 * 10**8, 4 * 10**8)):
    return [RunRecord(student_params=5 * 10**7, teacher_params=t, metrics={"eval_loss": v}) for t, v in zip(teachers, values)]


def test_fit_beyond_the_range_is_censored_though_the_best_teacher_is_inside():
    # Convex fit with its minimum beyond the largest teacher.
    (o,) = student_optima(_runs([1.0, 0.7, 0.45, 0.46]), bootstrap=0)
    assert o.censored == "at_least" and o.teacher_params == pytest.approx(4 * 10**8)


def test_concave_fit_falls_back_to_the_best_measured_teacher():
    (o,) = student_optima(_runs([1.0, 0.9, 0.5, 0.52]), bootstrap=0)
    assert o.censored is None and o.teacher_params == pytest.approx(3 * 10**8)


def test_asymmetric_curve_over_a_wide_ladder_uses_the_neighbourhood_of_the_best_teacher():
    # exp(-g) + g in g = ln(T/800M): steep below the optimum, shallow above it. One quadratic over all
    # 9 teachers (100M-25.6B) lands 2.4x too high; the best teacher's neighbourhood gets closer.
    teachers = [int(1e8 * 2**k) for k in range(9)]
    values = [2.0 + np.exp(-np.log(t / 8e8)) + np.log(t / 8e8) for t in teachers]
    (o,) = student_optima(_runs(values, teachers), bootstrap=0)
    global_fit = np.polyfit(np.log(teachers), values, 2)
    single_quadratic = np.exp(-global_fit[1] / (2 * global_fit[0]))
    assert single_quadratic > 2.3 * 8e8
    assert o.censored is None and 8e8 < o.teacher_params < 1.7 * 8e8


def test_interior_minimum_of_a_convex_fit_is_a_point():
    (o,) = student_optima(_runs([1.0, 0.6, 0.5, 0.7]), bootstrap=0)
    assert o.censored is None and 2 * 10**8 < o.teacher_params < 3 * 10**8


def test_higher_is_better_metric_gives_the_same_optima():
    kwargs = dict(ratio=3.0, students=STUDENTS, noise=0.003, repeats=2, seed=5)
    lower = student_optima(synthetic_runs(**kwargs), bootstrap=0)
    higher = student_optima(synthetic_runs(metric="lambada_acc", **kwargs), metric="lambada_acc",
                            direction="higher", bootstrap=0)
    assert [o.teacher_params for o in higher] == pytest.approx([o.teacher_params for o in lower], rel=1e-6)


def test_one_outlying_run_barely_moves_a_robust_optimum():
    runs = synthetic_runs(ratio=2.5, students=[100_000_000], noise=0.002, repeats=3, seed=2)
    clean = student_optima(runs, bootstrap=0)[0].teacher_params
    bad = runs[0].model_copy(update={"run_id": "outlier", "metrics": {"eval_loss": runs[0].metrics["eval_loss"] + 0.5}})
    dirty = student_optima([*runs, bad], bootstrap=0)[0].teacher_params
    assert dirty / clean == pytest.approx(1.0, abs=0.05)


def test_groups_split_by_tokens_and_family():
    a = synthetic_runs(students=[100_000_000], tokens_per_param=20, seed=1)
    b = synthetic_runs(students=[100_000_000], tokens_per_param=40, seed=2)
    c = synthetic_runs(students=[100_000_000], family="other", seed=3)
    optima = student_optima([*a, *b, *c], bootstrap=0)
    assert sorted((o.family, o.tokens) for o in optima) == [("other", 2_000_000_000), ("synthetic", 2_000_000_000),
                                                            ("synthetic", 4_000_000_000)]
    only = student_optima([*a, *b, *c], family="other", bootstrap=0)
    assert [o.family for o in only] == ["other"]


def test_nonembed_sizes_are_used_when_asked():
    runs = synthetic_runs(students=[100_000_000], noise=0.0)
    (o,) = student_optima(runs, size_measure="nonembed", bootstrap=0)
    assert o.student_params == 80_000_000
    assert o.teacher_params == pytest.approx(0.8 * 250_000_000, rel=0.01)


def test_nonembed_without_counts_says_how_many_runs_lack_them():
    runs = [r.model_copy(update={"student_params_nonembed": None}) for r in synthetic_runs(students=[100_000_000])]
    with pytest.raises(InputError, match=f"{len(runs)} of {len(runs)} runs lack non-embedding sizes"):
        student_optima(runs, size_measure="nonembed")


def test_two_teachers_are_too_few_and_the_error_says_how_many():
    runs = synthetic_runs(students=STUDENTS, multiples=(2.0, 3.0))
    with pytest.raises(InputError, match="at least 3 distinct teacher sizes.*most found was 2"):
        student_optima(runs)


def test_groups_with_too_few_teachers_are_skipped_not_fatal():
    good = synthetic_runs(students=[100_000_000], seed=1)
    thin = [RunRecord(student_params=50_000_000, teacher_params=t, metrics={"eval_loss": 3.0}) for t in (10**8, 2 * 10**8)]
    optima = student_optima([*good, *thin], bootstrap=0)
    assert [o.student_params for o in optima] == [100_000_000]


def test_bootstrap_interval_is_reproducible_by_seed():
    runs = synthetic_runs(students=[100_000_000], noise=0.005, seed=4)
    first = student_optima(runs, bootstrap=200, seed=7)[0]
    again = student_optima(runs, bootstrap=200, seed=7)[0]
    other = student_optima(runs, bootstrap=200, seed=8)[0]
    assert (first.low, first.high) == (again.low, again.high)
    assert (first.low, first.high) != (other.low, other.high)
    assert np.isfinite([first.low, first.high]).all()


def test_students_cut_from_different_teachers_are_one_size_and_inits_are_separate():
    # Pruning to one target gives sizes a few parameters apart; pruned and scratch students are different experiments.
    runs = []
    for init, offset in (("pruned", 0.0), ("scratch", 0.4)):
        for k, (teacher, loss) in enumerate([(124_000, 5.8), (174_000, 5.6), (544_000, 5.5), (941_000, 5.7)]):
            runs.append(RunRecord(student_params=56_000 + 13 * k, teacher_params=teacher, student_init=init,
                                  metrics={"eval_loss": loss + offset}))
    optima = student_optima(runs, bootstrap=100)
    assert [(o.student_init, o.student_params, o.n_runs) for o in optima] == [("pruned", 56_019, 4), ("scratch", 56_019, 4)]


def test_three_runs_for_three_parameters_give_a_point_without_an_invented_interval():
    (o,) = student_optima(_runs([1.0, 0.6, 0.7], teachers=(10**8, 2 * 10**8, 4 * 10**8)), bootstrap=200)
    assert o.censored is None and o.low is None and o.high is None
