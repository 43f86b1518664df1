"""`capgap fit`: report, --json document, --out file, and one-line exit-2 errors for bad input."""

import json
import re
import subprocess
import sys

import pytest

from capgap.commands.cli import main
from capgap.laws import load_law
from capgap.runs.store import RunStore, write_csv_runs
from capgap.runs.synthetic import synthetic_runs

STUDENTS = [20_000_000, 45_000_000, 100_000_000, 220_000_000, 500_000_000]
REQUIRED_KEYS = {"law", "coefficients", "intervals", "optima", "size_measure", "metric", "n_runs", "student_range",
                 "provenance"}


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "runs.jsonl"
    RunStore(path).extend(synthetic_runs(ratio=2.5, students=STUDENTS, noise=0.003, seed=1, with_teacher_loss=False))
    return path


def reported_ratio(out):
    return float(re.search(r"^  r = ([0-9.]+)", out, re.MULTILINE).group(1))


def run(capsys, *argv):
    try:
        code = main(["fit", *map(str, argv)])
    except SystemExit as exc:  # argparse rejects bad flags by exiting
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_report_shows_optima_law_goodness_and_cv(capsys, store):
    code, out, err = run(capsys, store, "--bootstrap", 100)
    assert code == 0, err
    assert "per-student optima read off the law (5, 0 beyond their ladder)" in out
    assert "law ratio: T* = r·S" in out and "90% interval [" in out
    assert reported_ratio(out) == pytest.approx(2.5, rel=0.05)
    assert "goodness of fit: RMSE of eval_loss" in out and "residual degrees of freedom" in out
    assert "intervals: 100 draws by profile-likelihood sampling" in out and "0 failed, effective sample size" in out
    assert "model choice (leave-one-student-size-out CV" in out and "ratio" in out
    assert "dsl not compared" in out  # these runs carry no teacher_loss


def test_json_document_has_the_issue_keys_and_matches_out(capsys, store, tmp_path):
    out_path = tmp_path / "law.json"
    code, out, _ = run(capsys, store, "--law", "power", "--bootstrap", 50, "--json", "--out", out_path)
    assert code == 0
    document = json.loads(out)
    assert REQUIRED_KEYS <= set(document)
    assert document == json.loads(out_path.read_text())
    assert document["law"] == "power" and set(document["coefficients"]) == {"k", "p"}
    assert set(document["intervals"]) == {"k", "p"} and all(len(v) == 2 for v in document["intervals"].values())
    assert document["n_runs"] == 40 and document["student_range"] == [20_000_000, 500_000_000]
    assert {"student_params", "teacher_params", "low", "high", "censored"} <= set(document["optima"][0])
    assert load_law(out_path).optimal_teacher(1e8).low is not None


def test_csv_input_and_flags(capsys, tmp_path):
    runs = synthetic_runs(ratio=3.0, students=STUDENTS, metric="lambada_acc", noise=0.003, seed=2, with_teacher_loss=False)
    path = tmp_path / "runs.csv"
    write_csv_runs(runs, path)
    code, out, err = run(capsys, path, "--metric", "lambada_acc", "--law", "ratio", "--size", "nonembed",
                         "--family", "synthetic", "--bootstrap", 50, "--seed", 3, "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["metric"] == "lambada_acc" and document["direction"] == "higher"
    assert document["size_measure"] == "nonembed"
    assert document["coefficients"]["r"] == pytest.approx(3.0, rel=0.08)


def _renamed_store(tmp_path, metric, name):
    runs = synthetic_runs(students=STUDENTS, metric=metric, noise=0.003, seed=2, with_teacher_loss=False)
    path = tmp_path / f"{name}.jsonl"
    RunStore(path).extend([r.model_copy(update={"metrics": {name: r.metrics[metric]}}) for r in runs])
    return path


def test_unknown_metric_direction_warns_and_is_taken_as_lower_is_better(capsys, tmp_path):
    code, out, err = run(capsys, _renamed_store(tmp_path, "eval_loss", "xent"), "--law", "ratio", "--bootstrap", 0)
    assert code == 0 and "capgap: warning: direction of metric 'xent' is unknown; taking lower" in err
    assert "xent (lower is better)" in out and reported_ratio(out) == pytest.approx(2.5, rel=0.05)


def test_higher_is_better_flag_sets_the_direction(capsys, tmp_path):
    path = _renamed_store(tmp_path, "lambada_acc", "quality")
    code, out, err = run(capsys, path, "--law", "ratio", "--bootstrap", 0, "--higher-is-better")
    assert code == 0 and err == "" and "quality (higher is better)" in out
    assert reported_ratio(out) == pytest.approx(2.5, rel=0.05)


def test_lower_is_better_flag_sets_the_direction(capsys, tmp_path):
    # 'quality' is unknown by name: without a flag it would be taken as lower-is-better with a warning
    path = _renamed_store(tmp_path, "eval_loss", "quality")
    code, out, err = run(capsys, path, "--law", "ratio", "--bootstrap", 0, "--lower-is-better")
    assert code == 0 and err == "" and "quality (lower is better)" in out
    assert reported_ratio(out) == pytest.approx(2.5, rel=0.05)


def test_an_error_rate_is_lower_is_better_by_name(capsys, tmp_path):
    path = _renamed_store(tmp_path, "eval_loss", "top1_err")
    code, out, err = run(capsys, path, "--law", "ratio", "--bootstrap", 0)
    assert code == 0 and err == "" and "top1_err (lower is better)" in out


def test_the_two_direction_flags_exclude_each_other(capsys, tmp_path):
    code, out, err = run(capsys, tmp_path / "runs.jsonl", "--higher-is-better", "--lower-is-better")
    assert code == 2 and out == "" and "not allowed with argument" in err


def one_line_error(capsys, *argv):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("capgap: error: ") and "Traceback" not in err
    return lines[0]


def test_missing_file(capsys, tmp_path):
    assert "file not found" in one_line_error(capsys, tmp_path / "nope.jsonl")


def test_absent_metric_names_the_metrics_present(capsys, store):
    assert "metric 'wikitext2_ppl' is in none of the runs; metrics present: eval_loss" in one_line_error(
        capsys, store, "--metric", "wikitext2_ppl")


def test_too_few_teachers_says_needed_and_found(capsys, tmp_path):
    path = tmp_path / "runs.jsonl"
    RunStore(path).extend(synthetic_runs(students=STUDENTS, multiples=(2.0, 3.0), with_teacher_loss=False))
    message = one_line_error(capsys, path)
    assert "at least 3 distinct teacher sizes" in message and "most found was 2" in message


def test_too_few_student_sizes_for_power(capsys, tmp_path):
    path = tmp_path / "runs.jsonl"
    RunStore(path).extend(synthetic_runs(students=[100_000_000], noise=0.001, with_teacher_loss=False))
    assert "power law (T* = k·S^p) needs runs at 2 or more student sizes; found 1" in one_line_error(
        capsys, path, "--law", "power")


def test_unbracketed_ladder_says_which_way_to_extend(capsys, tmp_path):
    path = tmp_path / "runs.jsonl"
    RunStore(path).extend(synthetic_runs(ratio=2.0, students=STUDENTS, multiples=(4.0, 5.0, 6.0, 7.0), noise=0.001,
                                         with_teacher_loss=False))
    # Every student's smallest teacher is its best: a one-sided answer, said first, with the way to extend.
    assert main(["fit", str(path), "--law", "ratio", "--bootstrap", "50"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("warning: one-sided answer: the smallest teacher tried was the best for every student")
    assert "T* is at most 4x the student" in out[1] and "add teachers below 80M" in "\n".join(out)
    assert "  r <= 4  (a one-sided bound, no point estimate)" in out


def test_unknown_law_and_bad_draws(capsys, store):
    assert "invalid choice: 'cubic'" in one_line_error(capsys, store, "--law", "cubic")
    for flag in ("--draws", "--bootstrap"):  # --bootstrap: the old name, kept
        assert "number of draws (--draws, bootstrap=) must be 0 or more" in one_line_error(capsys, store, flag, -1)


def test_command_runs_as_a_program(store):
    result = subprocess.run([sys.executable, "-m", "capgap", "fit", str(store), "--law", "ratio", "--bootstrap", "20"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "law ratio" in result.stdout


def test_report_marks_censored_optima_as_bounds_and_says_how_to_measure_them(capsys, tmp_path):
    ladder = [30_000_000, 50_000_000, 80_000_000, 130_000_000, 200_000_000, 330_000_000, 550_000_000, 750_000_000,
              1_000_000_000]
    path = tmp_path / "runs.jsonl"
    RunStore(path).extend(synthetic_runs(ratio=3.0, students=STUDENTS, teachers=ladder, noise=0.002, repeats=2, seed=8,
                                         with_teacher_loss=False))
    code, out, err = run(capsys, path, "--law", "ratio", "--bootstrap", 50)
    assert code == 0, err
    assert "per-student optima read off the law (5, 1 beyond their ladder)" in out
    assert "[>= " in out and "(beyond the largest teacher measured: one-sided)" in out
    assert "to bracket them: 1 optimum(s) beyond the largest teacher measured: add teachers above 1B" in out


def test_init_filter_keeps_one_student_init_and_says_so(capsys, tmp_path):
    pruned = synthetic_runs(ratio=2.5, students=STUDENTS, noise=0.003, seed=1, with_teacher_loss=False)
    scratch = synthetic_runs(ratio=1.5, students=STUDENTS, noise=0.003, seed=2, with_teacher_loss=False)
    path = tmp_path / "mixed.jsonl"
    RunStore(path).extend([r.model_copy(update={"student_init": "pruned", "run_id": "p" + r.run_id}) for r in pruned]
                          + [r.model_copy(update={"student_init": "scratch", "run_id": "s" + r.run_id}) for r in scratch])
    code, out, _ = run(capsys, path, "--law", "ratio", "--init", "pruned", "--bootstrap", "50", "--json")
    document = json.loads(out)
    assert code == 0 and document["n_runs"] == len(pruned)
    assert document["coefficients"]["r"] == pytest.approx(2.5, rel=0.1)
    assert document["provenance"].endswith("only runs with student_init pruned")
    code, out, _ = run(capsys, path, "--law", "ratio", "--init", "scratch", "--bootstrap", "50", "--json")
    assert json.loads(out)["coefficients"]["r"] == pytest.approx(1.5, rel=0.1)
    assert "no runs with student_init 'distilled'; the runs have: pruned, scratch" in one_line_error(
        capsys, path, "--init", "distilled")


def test_warnings_come_first_in_the_report_and_sit_in_the_law_file(capsys, tmp_path):
    path = tmp_path / "one.jsonl"
    RunStore(path).extend(synthetic_runs(students=[100_000_000], multiples=(1.5, 2.2, 3.3, 5.0), noise=0.002,
                                         with_teacher_loss=False))
    out_path = tmp_path / "law.json"
    code, out, err = run(capsys, path, "--law", "ratio", "--out", out_path)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].startswith("warning: ") and "assumes each student's curve is symmetric" in lines[1]
    assert json.loads(out_path.read_text())["diagnostics"]["warnings"][0] in lines[1]


def test_out_in_a_missing_folder_is_refused_before_fitting(capsys, store, tmp_path):
    message = one_line_error(capsys, store, "--out", tmp_path / "missing" / "law.json")
    assert "the folder of the law file" in message and "does not exist" in message
    assert not (tmp_path / "missing").exists()


def test_a_fit_killed_while_writing_leaves_the_old_law_file_and_no_half(store, tmp_path, monkeypatch):
    import os

    from capgap.fit.law_fit import fit_law
    from capgap.laws.base import save_law
    from capgap.runs.store import load_runs

    out_path = tmp_path / "law.json"
    out_path.write_text("previous law\n")
    law = fit_law(load_runs([store]), law="ratio", bootstrap=20)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies between writing the temporary file and renaming it

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        save_law(law, out_path)
    assert out_path.read_text() == "previous law\n" and not [p for p in tmp_path.iterdir() if "law.json" in p.name and p != out_path]
    monkeypatch.undo()
    save_law(law, out_path)
    assert json.loads(out_path.read_text())["law"] == "ratio"


def test_an_exact_fits_listed_optimum_says_its_range_is_the_measured_teachers(capsys, tmp_path):
    path = tmp_path / "three.jsonl"
    RunStore(path).extend(synthetic_runs(ratio=2.5, students=[1e8], multiples=(1.5, 2.5, 4.0), noise=0.0005, seed=3,
                                         with_teacher_loss=False))
    code, out, _ = run(capsys, path, "--law", "ratio")
    row = next(line for line in out.splitlines() if "T*/S" in line)
    assert code == 0 and "[150M, 400M]" in row and "an exact fit: the range is the measured teachers" in row


def test_a_fit_with_draws_lists_its_optima_without_the_exact_fit_note(capsys, store):
    code, out, _ = run(capsys, store, "--law", "ratio", "--bootstrap", "100")
    assert code == 0 and "T*/S" in out and "an exact fit" not in out
