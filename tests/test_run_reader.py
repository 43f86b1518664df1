"""One reading policy for every verb: only a torn last line is skipped; a malformed line elsewhere, or a
conflicting repeat of a run, is an error naming file and line(s); exact repeats and failed runs are counted."""

import json
import os

import pytest

from capgap.core.errors import InputError
from capgap.runs.records import FailedRun, RunRecord
from capgap.runs.reader import DuplicateRunWarning, FailedRunWarning, TornLineWarning
from capgap.runs.store import RunStore, load_runs


def _store(tmp_path, n=10):
    path = tmp_path / "runs.jsonl"
    RunStore(path).extend([RunRecord(student_params=1_000_000 * (1 + i % 2), teacher_params=4_000_000 * (1 + i),
                                     metrics={"eval_loss": 3.0 + i / 10}) for i in range(n)])
    return path


def test_a_malformed_middle_line_is_an_error_naming_file_and_line(tmp_path):
    path = _store(tmp_path)
    lines = path.read_text().splitlines()
    lines[3] = lines[3][:-1] + ",}"  # a trailing comma on line 4 of 10
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"runs.jsonl:4: line 4 is not JSON"):
        load_runs(path)


def test_a_non_json_first_line_is_not_called_torn(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text("student_params,teacher_params,eval_loss")  # a CSV under a .jsonl name, no newline
    with pytest.raises(InputError, match=r"runs.jsonl:1: line 1 is not JSON"):
        load_runs(path)


def test_only_a_torn_last_line_is_skipped_with_a_warning(tmp_path):
    path = _store(tmp_path)
    whole = RunRecord(student_params=5, teacher_params=50, metrics={"eval_loss": 1.0}).model_dump_json()
    with open(path, "a") as handle:
        handle.write(whole[:30])
    with pytest.warns(TornLineWarning, match=r"runs.jsonl:11: torn last line"):
        assert len(load_runs(path)) == 10
    with pytest.raises(InputError, match="torn"):
        load_runs(path, strict=True)
    with open(path, "a") as handle:  # the same fragment followed by a newline is no torn write
        handle.write("\n")
    with pytest.raises(InputError, match="runs.jsonl:11: line 11 is not JSON"):
        load_runs(path)


def test_the_next_append_removes_a_torn_tail_so_it_never_ends_up_mid_file(tmp_path):
    path = _store(tmp_path, 2)
    with open(path, "a") as handle:
        handle.write('{"student_params": 5, "tea')
    with pytest.warns(TornLineWarning, match="removed a torn last line"):
        RunStore(path).append(RunRecord(student_params=7, teacher_params=70, metrics={"eval_loss": 1.0}))
    assert len(load_runs(path, strict=True)) == 3


def test_conflicting_repeat_names_both_lines_exact_repeat_is_counted_once(tmp_path):
    path = _store(tmp_path)
    lines = path.read_text().splitlines()
    data = json.loads(lines[0])
    path.write_text("\n".join(lines + [lines[0], lines[1]]) + "\n")
    with pytest.warns(DuplicateRunWarning, match=r"2 exact repeat\(s\)") as caught:
        assert len(load_runs(path)) == 10
    assert len([w for w in caught if w.category is DuplicateRunWarning]) == 1
    data["metrics"]["eval_loss"] = 3.5
    path.write_text("\n".join(lines + [json.dumps(data)]) + "\n")
    with pytest.raises(InputError, match=r"runs.jsonl:11: duplicate run_id .* other results than .*runs.jsonl:1 "
                                         r"\(eval_loss 3.5 here, 3.0 there\)"):
        load_runs(path)


def test_conflicts_across_files_and_csv_follow_the_same_policy(tmp_path, run_cli):
    path = _store(tmp_path)
    RunStore(path).export_csv(tmp_path / "runs.csv")
    with pytest.warns(DuplicateRunWarning):
        assert len(load_runs([path, tmp_path / "runs.csv"])) == 10
    text = (tmp_path / "runs.csv").read_text().replace(",3.0,", ",3.9,", 1)
    (tmp_path / "other.csv").write_text(text)
    with pytest.raises(InputError, match=r"other.csv:2: duplicate run_id .*runs.jsonl:1"):
        load_runs([path, tmp_path / "other.csv"])
    first = json.loads(path.read_text().splitlines()[0])
    first["metrics"]["eval_loss"] = 3.5
    (tmp_path / "dup.jsonl").write_text(path.read_text() + json.dumps(first) + "\n")
    for argv in (["fit", path, tmp_path / "other.csv"], ["pareto", tmp_path / "dup.jsonl"],
                 ["plot", "runs", path, tmp_path / "other.csv", "--out", tmp_path / "f.png"]):
        result = run_cli(*argv)
        assert result.returncode == 2 and "duplicate run_id" in result.stderr and "Traceback" not in result.stderr


def test_failed_runs_are_kept_by_the_store_and_skipped_by_readers(tmp_path, run_cli):
    path = _store(tmp_path)
    store = RunStore(path)
    failed = FailedRun(run_id="f00d", reason="loss is nan at step 3 of 8", config={"teacher": "t", "target": 1})
    assert store.append(failed)
    with pytest.warns(FailedRunWarning, match=r"1 failed run\(s\) skipped .*loss is nan"):
        assert len(store.load()) == 10
    assert set(store.failed()) == {"f00d"}
    # A retry that finishes supersedes the failure.
    assert store.append(RunRecord(run_id="f00d", student_params=3, teacher_params=30, metrics={"eval_loss": 2.0}))
    assert store.failed() == {} and len(store.load()) == 11
    result = run_cli("runs", "validate", path)
    assert result.returncode == 0 and "11 runs" in result.stdout


def test_no_lock_file_is_left_after_appends_or_failures(tmp_path, run_cli):
    path = _store(tmp_path)
    (tmp_path / "bad.csv").write_text("student_params,teacher_params,eval_loss\n1M,10M,3\n2M,10M,nan\n")
    assert run_cli("runs", "import", tmp_path / "bad.csv", "--store", tmp_path / "new.jsonl").returncode == 2
    (tmp_path / "good.csv").write_text("student_params,teacher_params,eval_loss\n1M,10M,3\n")
    assert run_cli("runs", "import", tmp_path / "good.csv", "--store", path).returncode == 0
    assert sorted(os.listdir(tmp_path)) == ["bad.csv", "good.csv", "runs.jsonl"]

