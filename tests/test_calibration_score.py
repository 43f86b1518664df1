"""bench/calibration_score.py: how one answer of the fit is scored, and when a calibration design passes."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from calibration_score import REFUSED, Answer, Outcome, score, summarise  # noqa: E402

from capgap.laws.base import TeacherEstimate  # noqa: E402


def test_two_sided_one_sided_and_bare_answers():
    inside = score(TeacherEstimate(estimate=11.0, low=9.0, high=13.0), 10.0)
    assert inside.error == pytest.approx(0.1) and inside.hit and not inside.excluded and not inside.one_sided
    outside = score(TeacherEstimate(estimate=20.0, low=15.0, high=25.0), 10.0)
    assert not outside.hit and outside.excluded
    bound = score(TeacherEstimate(estimate=16.0, low=None, high=16.0), 10.0)  # "at most the smallest teacher"
    assert bound.one_sided and bound.hit and bound.error != bound.error  # a bound has no error (nan)
    wrong_bound = score(TeacherEstimate(estimate=16.0, low=16.0, high=None), 10.0)
    assert wrong_bound.one_sided and wrong_bound.excluded
    bare = score(TeacherEstimate(estimate=10.0), 10.0)
    assert not bare.hit and not bare.excluded and bare.error == 0.0


def outcome(answer: Answer, warned=False, lack_of_fit=False) -> Outcome:
    return Outcome({1.0: answer}, warned, lack_of_fit, answer.refused)


def test_on_target_passes_and_lack_of_fit_said_passes_too():
    good = [outcome(Answer(0.01, i % 10 != 0, False, i % 10 == 0, False)) for i in range(20)]  # coverage 0.9
    assert summarise(good, (1.0,), 0.1, (0.8, 0.95), False).passed
    confident_wrong = [outcome(Answer(0.5, False, False, True, False)) for _ in range(20)]
    summary = summarise(confident_wrong, (1.0,), 0.1, (0.8, 0.95), False)
    assert not summary.passed and summary.excluded_unwarned == 20
    said = [outcome(Answer(0.5, False, False, True, False), warned=True, lack_of_fit=True) for _ in range(20)]
    assert summarise(said, (1.0,), 0.1, (0.8, 0.95), False).passed


def test_a_one_sided_design_wants_true_bounds_and_counts_refusals():
    bounds = [outcome(Answer(float("nan"), True, True, False, False), warned=True) for _ in range(10)]
    summary = summarise(bounds, (1.0,), 0.1, (0.8, 0.95), True)
    assert summary.passed and summary.one_sided == 1.0 and summary.one_sided_consistent == 1.0
    refused = summarise([outcome(REFUSED) for _ in range(10)], (1.0,), 0.1, (0.8, 0.95), True)
    assert not refused.passed and refused.refused == 1.0 and refused.coverage == [0.0]


def test_data_sets_answered_only_by_true_bounds_are_left_out_of_the_lack_of_fit_share():
    # 8 data sets off target with lack of fit said, 2 answered by bounds that hold the truth (no fit to lack).
    said = [outcome(Answer(0.5, True, False, False, False), warned=True, lack_of_fit=True) for _ in range(8)]
    true_bounds = [outcome(Answer(float("nan"), True, True, False, False), warned=True) for _ in range(2)]
    summary = summarise(said + true_bounds, (1.0,), 0.1, (0.8, 0.95), False)
    assert summary.lack_of_fit == pytest.approx(0.8) and summary.passed
    assert "the other 2 answer with bounds that hold the truth" in summary.why
    # A bound that leaves the truth out is no such excuse, and a two-sided data set without the warning counts.
    wrong_bounds = [outcome(Answer(float("nan"), False, True, True, False), warned=True) for _ in range(2)]
    assert not summarise(said + wrong_bounds, (1.0,), 0.1, (0.8, 0.95), False).passed
    unsaid = [outcome(Answer(0.5, True, False, False, False), warned=True) for _ in range(2)]
    assert not summarise(said + unsaid, (1.0,), 0.1, (0.8, 0.95), False).passed
