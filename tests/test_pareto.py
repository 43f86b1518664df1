"""Pareto frontiers: hand-made tables with known frontiers, ties, directions, bad rows."""

import json
from pathlib import Path

import numpy as np
import pytest

from capgap.core.errors import InputError
from capgap.plots.pareto import RUN_COMPUTE_LABEL, non_dominated, pareto, pareto_from_runs
from capgap.runs.records import RunRecord
from capgap.sizes.units import distill_flops

REPO = Path(__file__).resolve().parents[1]
MINIMA = REPO / "data" / "reference" / "minima_family_benchmarks.csv"


def brute_force(compute, performance, lower_is_better=False):
    """The definition, pair by pair: dominated when another point is <= in compute and
    >= in performance, one of them strictly."""
    sign = -1 if lower_is_better else 1
    keep = []
    for i, (ci, pi) in enumerate(zip(compute, performance)):
        dominated = any(cj <= ci and sign * pj >= sign * pi and (cj < ci or sign * pj > sign * pi)
                        for j, (cj, pj) in enumerate(zip(compute, performance)) if j != i)
        keep.append(not dominated)
    return np.array(keep)


def write(tmp_path, text, name="models.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_known_frontier_higher_is_better():
    compute = [1, 2, 2, 3, 4]
    perf = [10, 12, 11, 11, 15]  # (2, 11) loses to (2, 12); (3, 11) to (2, 12)
    assert non_dominated(compute, perf).tolist() == [True, True, False, False, True]


def test_ties_exact_duplicates_both_stay_and_equal_perf_at_more_compute_is_dominated():
    compute = [1, 1, 2, 3]
    perf = [10, 10, 10, 11]
    assert non_dominated(compute, perf).tolist() == [True, True, False, True]
    # the same, lower-is-better
    assert non_dominated(compute, [-p for p in perf], lower_is_better=True).tolist() == [True, True, False, True]


def test_lower_is_better_flips_the_frontier():
    compute = [1, 2, 3, 4]
    loss = [3.0, 2.5, 2.7, 2.0]
    assert non_dominated(compute, loss, lower_is_better=True).tolist() == [True, True, False, True]
    assert non_dominated(compute, loss).tolist() == [True, False, False, False]


def test_single_point_is_the_frontier():
    assert non_dominated([5.0], [1.0]).tolist() == [True]
    assert non_dominated([], []).tolist() == []


@pytest.mark.parametrize("lower", [False, True])
def test_matches_the_definition_on_random_tables_with_many_ties(lower):
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        compute = rng.integers(1, 5, size=n).astype(float)  # few levels: many ties
        perf = rng.integers(0, 4, size=n).astype(float)
        np.testing.assert_array_equal(non_dominated(compute, perf, lower_is_better=lower),
                                      brute_force(compute, perf, lower))


def test_model_table_mean_of_columns_tflops_and_sizes(tmp_path):
    path = write(tmp_path, "model,train_tflops,a_acc,b_acc\n"
                           "Small-1B,1e9,20,30\n"      # mean 25
                           "Mid-3B,2e9,40,20\n"        # mean 30
                           "Mid-3B-chat,2e9,30,20\n"   # mean 25: same compute, worse
                           "Big-7B,8e9,10,10\n")       # mean 10: dominated by all
    result = pareto(path)
    assert result.frontier == ["Small-1B", "Mid-3B"]
    assert result.direction == "higher"
    points = {p.name: p for p in result.points}
    assert points["Mid-3B"].performance == pytest.approx(30.0)
    assert points["Small-1B"].compute == pytest.approx(1e21)  # TFLOPs -> FLOPs
    assert points["Big-7B"].size == 7e9 and points["Mid-3B-chat"].size is None
    assert "unweighted mean of 2 metrics" in result.performance_label
    assert result.compute_label == "training compute (FLOPs)"


def test_model_table_chosen_columns_and_lower_is_better(tmp_path):
    path = write(tmp_path, "id,cost,err,params\nx,1,0.5,1M\ny,2,0.4,2M\nz,3,0.45,3M\n")
    result = pareto(path, compute="cost", perf=["err"], lower_is_better=True, name="id", size="params")
    assert result.frontier == ["x", "y"]
    assert [p.size for p in result.points] == [1e6, 2e6, 3e6]
    assert result.compute_label == "cost"  # no unit known: the column's name, unconverted


def test_reference_minima_table_agrees_with_the_definition():
    result = pareto(MINIMA)
    compute = [p.compute for p in result.points]
    perf = [p.performance for p in result.points]
    assert [p.on_frontier for p in result.points] == brute_force(compute, perf).tolist()
    assert result.frontier == sorted(result.frontier, key=lambda n: compute[[p.name for p in result.points].index(n)])
    assert len(result.points) == 13


@pytest.mark.parametrize("cell", ["", "nan", "NaN", "inf", "n/a"])
def test_nan_rows_are_refused_naming_the_row(tmp_path, cell):
    path = write(tmp_path, f"model,train_tflops,a_acc\nA-1B,1e9,20\nB-2B,2e9,{cell}\n")
    with pytest.raises(InputError) as error:
        pareto(path)
    message = str(error.value)
    assert f"{path}:3 (B-2B)" in message and "a_acc" in message and "\n" not in message


def test_duplicate_names_and_mixed_directions_are_refused(tmp_path):
    with pytest.raises(InputError, match="appears twice"):
        pareto(write(tmp_path, "model,flops,a_acc\nA,1,2\nA,2,3\n"))
    with pytest.raises(InputError, match="mix lower- and higher-is-better"):
        pareto(write(tmp_path, "model,flops,val_loss,a_acc\nA,1,2,3\n", "mixed.csv"))


def run(family, student, teacher, loss, tokens=1000, flops=None):
    return RunRecord(family=family, student_params=student, teacher_params=teacher, tokens=tokens,
                     metrics={"eval_loss": loss}, flops=flops)


def test_runs_one_frontier_per_family_with_counted_compute():
    runs = [run("gpt2", 100, 200, 3.0), run("gpt2", 100, 400, 2.9), run("gpt2", 100, 800, 3.1),
            run("pythia", 100, 200, 3.5, flops=1.0), run("pythia", 100, 400, 2.0, flops=2.0)]
    result = pareto_from_runs(runs)
    assert result.direction == "lower" and result.compute_label == RUN_COMPUTE_LABEL
    flags = {(p.group, p.name): p.on_frontier for p in result.points}
    # gpt2: 800 costs most and is worst; pythia's 200 is on ITS frontier though pythia 400 beats all gpt2 runs
    assert flags == {("gpt2", "gpt2 100 <- 200"): True, ("gpt2", "gpt2 100 <- 400"): True,
                     ("gpt2", "gpt2 100 <- 800"): False, ("pythia", "pythia 100 <- 200"): True,
                     ("pythia", "pythia 100 <- 400"): True}
    gpt2 = {p.name: p.compute for p in result.points if p.group == "gpt2"}
    assert gpt2["gpt2 100 <- 400"] == distill_flops(100, 400, 1000)
    assert [p.name for p in result.frontiers()["gpt2"]] == ["gpt2 100 <- 200", "gpt2 100 <- 400"]


def test_runs_of_one_pair_with_several_seeds_get_distinct_names():
    runs = [RunRecord(student_params=100, teacher_params=200, tokens=1000, seed=s, metrics={"eval_loss": 3.0 - s})
            for s in (0, 1)]
    result = pareto_from_runs(runs)
    assert len({p.name for p in result.points}) == 2
    assert [p.on_frontier for p in result.points] == [False, True]


def test_runs_without_compute_or_metric_are_refused():
    with pytest.raises(InputError, match="neither flops nor tokens"):
        pareto_from_runs([RunRecord(student_params=1, teacher_params=2, metrics={"eval_loss": 1.0})])
    with pytest.raises(InputError, match="no metric lambada_acc"):
        pareto_from_runs([run("gpt2", 100, 200, 3.0)], perf=["lambada_acc"])


def test_cli_json_text_and_figure(tmp_path, run_cli):
    out = tmp_path / "frontier.svg"
    done = run_cli("pareto", MINIMA, "--json", "--out", out)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    names = {p["name"]: p for p in data["points"]}
    assert all(names[n]["on_frontier"] for n in data["frontier"])
    assert [names[n]["compute"] for n in data["frontier"]] == sorted(names[n]["compute"] for n in data["frontier"])
    assert set(data["points"][0]) >= {"name", "compute", "performance", "on_frontier"}
    assert out.read_bytes().lstrip().startswith(b"<?xml")
    text = run_cli("pareto", MINIMA)
    assert text.returncode == 0 and all(n in text.stdout for n in data["frontier"])


def test_cli_refuses_a_nan_row_with_one_line_and_writes_nothing(tmp_path, run_cli):
    path = write(tmp_path, "model,train_tflops,a_acc\nA-1B,1e9,20\nB-2B,,30\n")
    out = tmp_path / "f.png"
    done = run_cli("pareto", path, "--out", out)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"{path}:3 (B-2B)" in done.stderr and "train_tflops" in done.stderr
    assert not out.exists()


def test_cli_higher_is_better_overrides_an_error_rate_read_as_lower(tmp_path, run_cli):
    path = write(tmp_path, "id,cost,top1_err\nx,1,0.5\ny,2,0.4\nz,3,0.45\n")
    lower = json.loads(run_cli("pareto", path, "--compute", "cost", "--name", "id", "--json").stdout)
    higher = json.loads(run_cli("pareto", path, "--compute", "cost", "--name", "id", "--json",
                                "--higher-is-better").stdout)
    # *_err is lower-is-better by name; the flag turns it round
    assert lower["direction"] == "lower" and lower["frontier"] == ["x", "y"]
    assert higher["direction"] == "higher" and higher["frontier"] == ["x"]


def test_runs_are_named_by_student_init_and_teacher_and_seeds_told_apart():
    teacher = {"teacher": "gpt2-L2-d64"}
    runs = [RunRecord(family="gpt2", student_params=30_016, teacher_params=173_824, tokens=1000, seed=seed,
                      student_init="pruned", metrics={"eval_loss": 4.0 + seed}, extra=teacher) for seed in (0, 1)]
    names = sorted(p.name for p in pareto_from_runs(runs).points)
    assert names == ["30k pruned <- gpt2-L2-d64 (174k), seed 0", "30k pruned <- gpt2-L2-d64 (174k), seed 1"]


def test_an_unknown_compute_column_lists_the_columns():
    with pytest.raises(InputError, match=r"no compute column 'nosuch' in the runs; columns: flops, .*tokens.*; "
                                         r"metrics: eval_loss"):
        pareto_from_runs([run("gpt2", 100, 200, 3.0)], compute="nosuch")
