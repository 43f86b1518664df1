"""The distillation-law generator of the calibration study: run counts, and its true optimum against the paper."""

import pytest

from capgap.laws.dsl_synthetic import DOUBLING_MULTIPLES, dsl_ladder_runs, dsl_true_optimum

STUDENTS = (150_000_000, 300_000_000, 600_000_000, 1_000_000_000)


@pytest.mark.parametrize("student, tokens_per_param, multiple", [
    # Busbridge et al.'s Table 6 constants, teachers at 20 tokens/param (data/reference/README.md)
    (1_000_000_000, 20.0, 81.0), (150_000_000, 20.0, 104.0), (1_000_000_000, 320.0, 8.5), (150_000_000, 320.0, 15.5),
])
def test_the_true_optimum_matches_the_published_figures(student, tokens_per_param, multiple):
    best = dsl_true_optimum(student, tokens_per_param * student)
    assert best / student == pytest.approx(multiple, rel=0.03)


@pytest.mark.parametrize("start, rungs", [(1.0, 9), (2.0, 8), (4.0, 7)])
def test_one_run_per_student_regime_rung_and_seed(start, rungs):
    multiples = [m for m in DOUBLING_MULTIPLES if m >= start]
    runs = dsl_ladder_runs(STUDENTS, multiples, tokens_per_param=(20.0, 320.0), repeats=2, seed=3)
    assert len(runs) == len(STUDENTS) * 2 * rungs * 2
    assert len({r.run_id for r in runs}) == len(runs)
    one = [r for r in runs if r.student_params_nonembed == STUDENTS[-1] and r.tokens == 20 * STUDENTS[-1]]
    assert sorted({r.teacher_params_nonembed / STUDENTS[-1] for r in one}) == pytest.approx(multiples)
    assert all(r.teacher_loss is not None and r.teacher_tokens == 20 * r.teacher_params_nonembed for r in runs)


def test_teacher_loss_can_be_left_out_and_noise_is_seeded():
    bare = dsl_ladder_runs(STUDENTS[:1], DOUBLING_MULTIPLES[:3], with_teacher_loss=False, seed=1)
    assert all(r.teacher_loss is None for r in bare)
    again = dsl_ladder_runs(STUDENTS[:1], DOUBLING_MULTIPLES[:3], with_teacher_loss=False, seed=1)
    assert [r.metrics for r in bare] == [r.metrics for r in again]
    noiseless = dsl_ladder_runs(STUDENTS[:1], DOUBLING_MULTIPLES[:3], noise=0.0, repeats=2)
    assert noiseless[0].metrics == noiseless[1].metrics
