"""capgap plan: the prior start, a fitted start, budgets, stopping, PLAN.csv, bad input, and plan -> measure -> plan."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from capgap.commands.cli import main
from capgap.core.errors import InputError
from capgap.sizes.ladders import LadderModel
from capgap.plan.planner import PLAN_COLUMNS, plan_runs, read_plan_csv, write_plan_csv
from capgap.sizes.units import distill_flops
from capgap.runs.synthetic import synthetic_runs

S = 100_000_000
LADDER = [LadderModel(name=f"T{i:02d}", params=int(S * m)) for i, m in enumerate(np.geomspace(1.25, 200, 16))]


def _runs(multiples, noise=0.005, seed=1):
    return synthetic_runs(ratio=2.5, students=[S], teachers=[int(S * m) for m in multiples], noise=noise, seed=seed)


def test_no_runs_starts_from_the_published_laws_and_spreads_over_the_prior() -> None:
    plan = plan_runs([], [S], LADDER, 6)
    assert plan.start == "prior" and "published laws" in plan.notes[0]
    before = plan.before[0]
    assert before.low < 2.5 * S < before.high  # Zhang et al.'s 2.5x inside the prior ...
    assert before.high > 50 * S  # ... and Busbridge et al.'s far larger optimum too
    teachers = sorted(r.teacher_params for r in plan.runs)
    assert len(plan.runs) == 6 and len(set(teachers)) >= 3  # enough distinct teachers to locate a curve
    assert teachers[-1] / teachers[0] > 5  # spread, not piled on one rung


def test_fitted_runs_concentrate_near_the_optimum_and_shrink_the_interval() -> None:
    runs = _runs([1.25, 1.6, 2.0, 2.5, 3.2, 4.0, 6.4, 13.4], noise=0.01)
    plan = plan_runs(runs, [S], LADDER, 4)
    assert plan.start == "runs" and plan.law == "ratio"
    before, after = plan.before[0], plan.after[0]
    assert before.low < before.estimate < before.high
    assert after.relative_half_width < before.relative_half_width
    assert after.estimate == before.estimate
    near = [abs(math.log(r.teacher_params / before.estimate)) < math.log(4) for r in plan.runs]
    assert sum(near) >= len(near) / 2  # most of the batch where the curve turns, not along a 200x ladder


def test_repeats_get_new_seeds_and_flops_budget_is_kept() -> None:
    runs = _runs([1.25, 2.0, 2.5, 3.2, 5.0, 9.5])
    budget = 2.5 * distill_flops(S, 3 * S, 20 * S)
    plan = plan_runs(runs, [S], LADDER, 8, flops_budget=budget)
    assert sum(r.flops for r in plan.runs) <= budget and plan.flops <= budget
    assert 1 <= len(plan.runs) <= 3
    seen = {(r.teacher_params, r.seed) for r in runs}
    assert all((r.teacher_params, r.seed) not in seen for r in plan.runs)


def test_target_width_already_met_proposes_nothing() -> None:
    runs = _runs([1.25, 1.6, 2.0, 2.5, 3.2, 4.0, 5.0, 6.4] * 3, noise=0.002)
    plan = plan_runs(runs, [S], LADDER, 4, target_width=0.2)
    assert plan.done and plan.runs == [] and "already within" in plan.notes[-1]
    assert plan.before[0].relative_half_width <= 0.2


def test_plan_csv_round_trip_and_columns(tmp_path: Path) -> None:
    plan = plan_runs([], [S], LADDER, 5)
    path = tmp_path / "plan.csv"
    write_plan_csv(plan, path)
    with open(path, newline="") as handle:
        assert next(csv.reader(handle)) == PLAN_COLUMNS
    back = read_plan_csv(path)
    assert [(r.student_params, r.teacher, r.tokens, r.seed) for r in back] == \
        [(r.student_params, r.teacher, r.tokens, r.seed) for r in plan.runs]


@pytest.mark.parametrize("argv, words", [
    (["--teachers", "nope"], "unknown ladder 'nope'"),
    (["--student", "20B"], "at least as large as every teacher"),
    (["--runs-budget", "0"], "--runs-budget must be at least 1"),
    (["--target-width", "1.5"], "--target-width must lie between 0 and 1"),
])
def test_bad_input_is_one_line_exit_2(argv, words, capsys) -> None:
    base = {"--student": "100M", "--teachers": "pythia", "--runs-budget": "4"}
    base.update(dict(zip(argv[::2], argv[1::2])))
    assert main(["plan", *[x for kv in base.items() for x in kv]]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and words in err and "Traceback" not in err


def test_cli_prints_intervals_and_writes_plan(tmp_path: Path, capsys) -> None:
    out = tmp_path / "plan.csv"
    assert main(["plan", "--student", "160M", "--teachers", "pythia", "--runs-budget", "5", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "wide prior" in text and "expected after the batch" in text and f"wrote {out}" in text
    assert len(read_plan_csv(out)) == 5


def test_read_plan_rejects_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    path.write_text("student_params,teacher_params,teacher,tokens,seed\n40000,100000,rung,2000,x\n")
    with pytest.raises(InputError, match=r"plan.csv:2: seed 'x' is not an integer"):
        read_plan_csv(path)
    path.write_text("student_params,teacher\n1,2\n")
    with pytest.raises(InputError, match="lacks column"):
        read_plan_csv(path)


@pytest.mark.slow
def test_end_to_end_plan_measure_fit_plan(tiny_corpus: Path, tmp_path: Path, capsys) -> None:
    """plan (prior) -> measure --plan -> fit -> plan again, conditioned on the first plan's runs."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from capgap.runs.store import RunStore

    torch.set_num_threads(1)
    ladder = tmp_path / "ladder"
    assert main(["ladder", "train", "--family", "gpt2", "--sizes", "L1-d64,L2-d64,L3-d64", "--tokens", "8k",
                 "--vocab-size", "300", "--seq-len", "32", "--batch-tokens", "512", "--quiet",
                 "--corpus", str(tiny_corpus), "--out", str(ladder)]) == 0
    first, store = tmp_path / "plan1.csv", tmp_path / "runs.jsonl"
    assert main(["plan", "--student", "40k", "--teachers", str(ladder / "ladder.csv"), "--runs-budget", "5",
                 "--tokens", "2k", "--out", str(first)]) == 0
    planned = read_plan_csv(first)
    assert len(planned) == 5 and len({r.teacher for r in planned}) == 3  # all three rungs, then repeats
    sweep = ["--teachers", str(ladder), "--corpus", str(tiny_corpus), "--runs", str(store), "--seq-len", "32",
             "--batch-tokens", "512", "--eval-tokens", "2k", "--no-wikitext", "--quiet"]
    assert main(["measure", "--plan", str(first), *sweep]) == 0
    records = RunStore(store).load(strict=True)
    assert sorted((r.extra["teacher"], r.seed, r.tokens >= 2000) for r in records) == \
        sorted((r.teacher, r.seed, True) for r in planned)
    assert main(["measure", "--plan", str(first), *sweep]) == 0  # resumable: nothing run twice
    assert len(RunStore(store).load()) == 5
    bad = tmp_path / "bad.csv"
    bad.write_text("student_params,teacher_params,teacher,tokens,seed\n40000,100000,no-such-rung,2000,0\n")
    capsys.readouterr()
    assert main(["measure", "--plan", str(bad), *sweep]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "bad.csv:2: teacher 'no-such-rung' is not in the ladder" in err
    capsys.readouterr()
    main(["fit", str(store), "--law", "ratio", "--bootstrap", "50"])  # may refuse tiny, flat curves: exit 0 or 2
    second = tmp_path / "plan2.csv"
    assert main(["plan", str(store), "--student", "40k", "--teachers", str(ladder / "ladder.csv"),
                 "--runs-budget", "3", "--tokens", "2k", "--out", str(second)]) == 0
    again = read_plan_csv(second)
    done = {(r.teacher, r.seed) for r in planned}
    assert again and all((r.teacher, r.seed) not in done for r in again)  # conditioned: new seeds for pairs run
    assert all(not math.isnan(r.tokens) for r in again)


def _scorer():
    import capgap.plan.scoring as scoring

    model, _, rows, _ = scoring.prior_model([], [(S, 20 * S)], 0, "total")
    logs = np.log([m.params for m in LADDER])
    return scoring.DesignScorer(model, *rows, np.zeros(len(LADDER), dtype=int), logs)


def _fits_own_count(students_rungs: dict[int, list[int]]):
    """(shared ratio, far shape, residual df) of the curves `capgap fit` chooses for runs at these ladder rungs."""
    from capgap.runs.groups import group_runs
    from capgap.laws.base import law_class
    from capgap.fit.curve_fit import affordable_space
    from capgap.laws.curve import Centre
    from capgap.fit.onestage import degrees_of_freedom

    runs = [r for student, rungs in students_rungs.items() for k, i in enumerate(rungs) for r in synthetic_runs(
        ratio=2.5, students=[student], teachers=[LADDER[i].params], noise=0.01, seed=k)]  # a repeat: a new seed
    groups = group_runs(runs, "eval_loss", "lower")
    space, _ = affordable_space(law_class("ratio"), groups, Centre.of(groups))
    return space.shared_asymmetry or not space.ratio, space.n_shape > 0, degrees_of_freedom(groups, space)


def test_designs_are_counted_as_the_fit_counts_them() -> None:
    wide = [0, 4, 12, 15]  # 1.25x .. 200x, four rungs: the fit takes the curve for a parabola
    narrow = [0, 1, 2, 3, 4]  # 1.25x .. 4.8x: under a decade, no far shape whatever the rungs
    shortcut = _scorer()
    for design in (wide, narrow, wide + [8], narrow + [9, 12, 15], narrow * 2, list(range(16))):
        found = shortcut.structure(design)
        assert (found.shared, found.far, found.df) == _fits_own_count({S: design}), design
    assert shortcut.degrees_of_freedom(wide[:2]) == -1  # two rungs: the fit has no curve to use


def test_a_student_with_few_teachers_is_scored_with_the_shared_ratio_the_fit_would_use() -> None:
    import capgap.plan.scoring as scoring

    small, large = S // 2, S
    targets = [scoring.Target(small, 20 * small, 0), scoring.Target(large, 20 * large, 1)]
    model = scoring.prior_model_at(np.full(4, math.log(2.5)), targets, 1.0)
    logs = np.log([m.params for m in LADDER])
    scorer = scoring.DesignScorer(model, np.zeros(0, dtype=int), np.zeros(0), np.r_[np.zeros(16), np.ones(16)].astype(int),
                                  np.r_[logs, logs])
    rich, poor = [0, 1, 2, 3, 4, 5, 6], [1, 3, 5, 7]  # rungs of the ladder: 7 and 4 teachers
    both_rich = scorer.structure(rich + [16 + i for i in rich])
    one_poor = scorer.structure(rich + [16 + i for i in poor])
    assert not both_rich.shared and one_poor.shared  # a ratio per student only where every one has 6 teachers
    assert (both_rich.shared, both_rich.df) == (_fits_own_count({small: rich, large: rich})[0],
                                                _fits_own_count({small: rich, large: rich})[2])
    assert (one_poor.shared, one_poor.df) == (_fits_own_count({small: rich, large: poor})[0],
                                              _fits_own_count({small: rich, large: poor})[2])
    # Under the shared ratio the rich student's runs inform the poor one's asymmetry: its lone left rung no longer
    # fits a curvature of its own, so the pooled design is worth more than the same runs scored with free ratios.
    free = scoring.DesignScorer(model, np.zeros(0, dtype=int), np.zeros(0), scorer.candidate_group, np.r_[logs, logs])
    free.structure = lambda design: scoring.Structure(**{**scorer.structure(design).__dict__, "shared": False,
                                                         "df": scorer.structure(design).df - 1})
    design = rich + [16 + i for i in poor]
    assert scorer.variances([design])[0, 1] < free.variances([design])[0, 1]


def test_exchange_never_leaves_a_batch_worse_than_the_greedy_one(monkeypatch) -> None:
    import capgap.plan.search as plan

    runs = _runs([1.25, 1.6, 2.0, 2.5, 3.2, 4.0, 5.0, 6.4], noise=0.02)  # a narrow ladder, a noisy shallow curve
    monkeypatch.setattr(plan, "EXCHANGE_STARTS", 0)
    monkeypatch.setattr(plan, "EXCHANGE_PASSES", 0)
    greedy = plan_runs(runs, [S], LADDER, 4, bootstrap=50)
    monkeypatch.undo()
    full = plan_runs(runs, [S], LADDER, 4, bootstrap=50)
    assert full.before == greedy.before
    assert full.after[0].relative_half_width <= greedy.after[0].relative_half_width + 1e-12
    assert len(full.runs) == len(greedy.runs) == 4


def test_a_cold_start_says_which_law_it_plans_with() -> None:
    plan = plan_runs([], [S], LADDER, 4, law="power")
    assert plan.start == "prior" and plan.law == "ratio"
    assert any("--law power is fitted once the runs allow it" in note for note in plan.notes)


def test_a_cold_start_forecasts_no_interval_from_an_assumed_curve_depth() -> None:
    plan = plan_runs([], [S], LADDER, 8)
    assert len(plan.runs) == 8 and plan.after[0].low is None and plan.after[0].high is None
    assert any(note.startswith("cold start:") and "an assumption" in note for note in plan.notes)


def test_a_batch_that_never_reaches_the_optimum_is_credited_nothing() -> None:
    import capgap.plan.scoring as scoring

    # Every draw puts the optimum at 2.5x; the prior on ln r has sd 1.
    model = scoring.prior_model_at(np.full(4, math.log(2.5)), [scoring.Target(S, 20 * S, 0)], 1.0)
    logs = np.log([m.params for m in LADDER])
    scorer = scoring.DesignScorer(model, np.zeros(0, dtype=int), np.zeros(0), np.zeros(len(LADDER), dtype=int), logs)
    now = scorer.variances([[]])[0, 0]
    around = scorer.variances([[0, 1, 3, 5] * 2])[0, 0]  # 1.25x-6.8x, two rungs a side of the optimum at 2.5x
    beyond = scorer.variances([[11, 12, 13, 15] * 2])[0, 0]  # 52x-200x: a curve that only rises
    assert around < now / 10
    assert beyond == now


def test_the_fits_warnings_come_first_and_init_selects_runs(capsys) -> None:
    multiples = [1.25, 1.6, 2.0, 2.5, 3.2, 4.0, 6.4, 13.4]
    mixed = [r for init in ("pruned", "scratch") for r in synthetic_runs(
        ratio=2.5, students=[S], teachers=[int(S * m) for m in multiples], noise=0.01, seed=3, student_init=init)]
    plan = plan_runs(mixed, [S], LADDER, 4, bootstrap=50)
    assert any(w.startswith("the runs mix student inits") for w in plan.warnings)
    from capgap.commands.plan import report

    lines = report(plan).splitlines()
    kinds = [line.split(":")[0] for line in lines[1:] if line.startswith(("warning:", "note:"))]
    assert kinds == sorted(kinds, reverse=True) and "warning" in kinds  # the fit's warnings before the notes
    assert "warning: fit: the runs mix student inits" in report(plan)
    pruned = plan_runs(mixed, [S], LADDER, 4, bootstrap=50, student_init="pruned")
    assert pruned.start == "runs" and not any("mix student inits" in n for n in pruned.warnings + pruned.notes)
    with pytest.raises(InputError, match="no runs with student_init 'nope'; the runs have: pruned, scratch"):
        plan_runs(mixed, [S], LADDER, 4, student_init="nope")


def test_the_shipped_study_plans_from_its_fit(capsys) -> None:
    from capgap.core.resources import data_path

    runs, ladder = data_path("runs", "shakespeare-study.jsonl"), data_path("runs", "shakespeare-study-ladder.csv")
    assert main(["plan", str(runs), "--student", "50k", "--teachers", str(ladder), "--runs-budget", "4",
                 "--init", "pruned"]) == 0
    text = capsys.readouterr().out
    assert "plan from the fitted runs (ratio law)" in text and "T* of the 50k student, 90% interval: now" in text
    assert text.count("gpt2-L2-d") == 4  # four proposed runs, each naming a rung of the shipped ladder


def test_a_one_sided_fit_plans_beyond_its_bound_with_the_runs_so_far(capsys) -> None:
    # The smallest teacher tried (2x) is the best: the fit answers "T* at most 2x", and the plan measures smaller
    # teachers, where the optimum is, rather than the published laws' prior the runs have ruled out.
    runs = synthetic_runs(ratio=1.1, students=[S], teachers=[int(S * m) for m in (2.0, 3.2, 6.4, 13.4)] * 2,
                          noise=0.002, seed=4)
    plan = plan_runs(runs, [S], LADDER, 4, bootstrap=50)
    assert plan.start == "bound" and any("one-sided" in n for n in plan.notes)
    assert plan.before[0].low is None and plan.before[0].high <= 2.0 * S * 1.01
    multiples = sorted(r.teacher_params / S for r in plan.runs)
    assert len(multiples) == 4 and sum(m < 2.0 for m in multiples) >= 2  # half the batch below the bound
    from capgap.commands.plan import report

    assert "at most" in report(plan) and "one-sided bound" in report(plan)


def test_the_cold_start_lookahead_prefers_a_first_batch_that_sets_up_the_second() -> None:
    import capgap.plan.search as plan
    import capgap.plan.scoring as scoring

    model, prior, rows, targets = scoring.prior_model([], [(S, 20 * S)], 0, "total")
    logs = np.log([m.params for m in LADDER])
    scorer = scoring.DesignScorer(model, *rows, np.zeros(16, dtype=int), logs, no_df_penalty=1.0,
                                  cap=scoring.ladder_cap(logs))
    piled, spread = [15, 15, 15, 15], [0, 5, 10, 15]  # four runs on the largest rung; four across the ladder
    assert plan._lookahead(scorer, [piled, spread], prior, targets, rows, 4) == spread
    assert plan._lookahead(scorer, [spread, piled], prior, targets, rows, 4) == spread


def test_the_planner_reasons_with_the_fits_own_point_not_a_second_fit(monkeypatch) -> None:
    import capgap.fit.point_fit as point_fit
    from capgap.fit.law_fit import fit_law
    from capgap.plan.planner import PLAN_BOOTSTRAP

    runs = _runs([1.25, 1.6, 2.0, 2.5, 3.2, 4.0, 5.0, 6.4], noise=0.01)
    calls: list[int] = []
    real = point_fit.fit_point

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(point_fit, "fit_point", counting)
    law = fit_law(runs, law="ratio", bootstrap=PLAN_BOOTSTRAP, seed=0)
    by_the_fit = len(calls)
    assert law.fitted is not None and law.fitted.point.df > 0  # the fit's state travels with the law it returns
    plan = plan_runs(runs, [S], LADDER, 2, seed=0)
    assert len(calls) - by_the_fit == by_the_fit  # the plan's fit, and no point fit of its own beside it
    before = law.optimal_teacher(S, plan.before[0].tokens)
    assert (plan.before[0].estimate, plan.before[0].low, plan.before[0].high) == (before.estimate, before.low,
                                                                                  before.high)


def test_a_wide_gap_beside_the_best_teacher_floors_the_score_until_a_rung_fills_it() -> None:
    import capgap.plan.scoring as scoring

    # The optimum at 3x; runs at 1.25x, 3.45x and 13.4x (rungs 0, 3, 7): the fit reaches its interval out to 13.4x,
    # 3.9x beside the best teacher, so more runs on those rungs cannot narrow it; a rung between them can.
    model = scoring.prior_model_at(np.full(4, math.log(3.0)), [scoring.Target(S, 20 * S, 0)], 1.0)
    logs = np.log([m.params for m in LADDER])
    group, measured = np.zeros(12, dtype=int), np.log(S * np.repeat([1.25, LADDER[3].params / S,
                                                                     LADDER[7].params / S], 4))
    floored = scoring.DesignScorer(model, group, measured, np.zeros(len(LADDER), dtype=int), logs,
                                   target_groups=[0])
    unfloored = scoring.DesignScorer(model, group, measured, np.zeros(len(LADDER), dtype=int), logs)
    reach = (logs[7] - math.log(3.0 * S)) / scoring.Z
    piled = floored.variances([[3, 3, 7, 7]])[0, 0]
    filled = floored.variances([[3, 3, 5, 5]])[0, 0]  # 6.8x: 2x from 3.45x, 2x short of 13.4x
    assert piled == pytest.approx(reach**2)  # the floor: a 90% half-width out to 13.4x
    assert unfloored.variances([[3, 3, 7, 7]])[0, 0] < reach**2  # what the linearisation alone promised
    assert filled < piled


def test_the_planner_fills_a_gap_the_fits_interval_reaches_across() -> None:
    # Runs on 1.25x, 3.45x and 13.4x only (4 seeds each), the optimum at 2.5x: the interval's top is the far rung.
    rungs = [LADDER[0], LADDER[3], LADDER[7]]
    runs = synthetic_runs(ratio=2.5, students=[S], teachers=[m.params for m in rungs], noise=0.01, seed=3,
                          repeats=4)
    plan = plan_runs(runs, [S], LADDER, 4)
    assert plan.before[0].high == pytest.approx(LADDER[7].params, rel=1e-6)  # the fit reaches to the far rung
    between = [r for r in plan.runs if LADDER[3].params < r.teacher_params < LADDER[7].params]
    assert between, [r.teacher_params / S for r in plan.runs]


def test_an_optimum_beyond_a_targets_own_teachers_is_floored_at_the_cap() -> None:
    from capgap.plan.scoring import gap_floor

    # The fit answers a fitted student whose optimum lies past its teachers with a bound, not an interval.
    logs = np.log([6.8, 13.4, 26.0])
    location = np.log([2.5, 9.0])
    depth = (logs[None, :] - location[:, None]) ** 2  # a parabola deep enough to tie nothing
    floor = gap_floor(logs, np.array([2, 2, 2]), location, depth, margin=0.01, far=math.log(3.0), beyond=7.0)
    assert floor[0] == 7.0  # 2.5x: below every teacher
    assert floor[1] == 0.0  # 9x: between 6.8x and 13.4x, neighbours within 3x
