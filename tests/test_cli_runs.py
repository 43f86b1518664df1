"""`capgap runs ...` end to end in a subprocess: exit codes, one-line errors, outputs."""

import pytest

from capgap.runs.records import RunRecord
from capgap.runs.store import RunStore, read_csv_runs

GOOD_CSV = "family,student_params,teacher_params,tokens,eval_loss\npythia,70M,160M,1e6,3.2\npythia,70M,410M,1e6,3.1\n"


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_validate_prints_one_summary_line_per_file(tmp_path, run_cli):
    (tmp_path / "a.csv").write_text(GOOD_CSV)
    RunStore(tmp_path / "b.jsonl").import_csv(tmp_path / "a.csv")
    result = run_cli("runs", "validate", tmp_path / "a.csv", tmp_path / "b.jsonl")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    assert "a.csv: ok, 2 runs" in lines[0] and "b.jsonl: ok, 2 runs" in lines[1]
    assert "metrics eval_loss" in lines[0]


def test_show_and_export(tmp_path, run_cli):
    (tmp_path / "a.csv").write_text(GOOD_CSV)
    shown = run_cli("runs", "show", tmp_path / "a.csv")
    assert shown.returncode == 0 and "eval_loss" in shown.stdout and "410000000" in shown.stdout
    exported = run_cli("runs", "export", tmp_path / "a.csv", "--csv", tmp_path / "out.csv")
    assert exported.returncode == 0
    def without_time(records):
        return [r.model_dump(exclude={"created_at"}) for r in records]

    assert without_time(read_csv_runs(tmp_path / "out.csv")) == without_time(read_csv_runs(tmp_path / "a.csv"))


def test_import_into_store(tmp_path, run_cli):
    (tmp_path / "a.csv").write_text(GOOD_CSV)
    first = run_cli("runs", "import", tmp_path / "a.csv", "--store", tmp_path / "s.jsonl")
    again = run_cli("runs", "import", tmp_path / "a.csv", "--store", tmp_path / "s.jsonl")
    assert "added 2 new runs" in first.stdout and "added 0 new runs" in again.stdout
    assert len(RunStore(tmp_path / "s.jsonl").load()) == 2


BAD_CSVS = {
    "missing_column": ("student_params,eval_loss\n1M,3\n", "missing required column(s) teacher_params"),
    "negative_size": ("student_params,teacher_params,eval_loss\n-1M,10M,3\n", ":2: column student_params"),
    "non_numeric_size": ("student_params,teacher_params,eval_loss\nbig,10M,3\n", "'big' is not a size"),
    "bad_suffix": ("student_params,teacher_params,eval_loss\n1.3X,10M,3\n", "'1.3X' is not a size"),
    "nan_metric": ("student_params,teacher_params,eval_loss\n1M,10M,NaN\n", "not finite"),
    "inf_metric": ("student_params,teacher_params,eval_loss\n1M,10M,inf\n", "not finite"),
    "duplicate_ids": ("run_id,student_params,teacher_params,eval_loss\nx,1M,10M,3\nx,2M,10M,3\n", ":3: duplicate run_id x"),
    "empty": ("", "empty file"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_bad_csv_input_is_one_line_and_exit_2(tmp_path, run_cli, case):
    content, fragment = BAD_CSVS[case]
    path = tmp_path / f"{case}.csv"
    path.write_text(content)
    assert_one_line_error(run_cli("runs", "validate", path), str(path), fragment)


def test_missing_file_and_torn_line(tmp_path, run_cli):
    assert_one_line_error(run_cli("runs", "validate", tmp_path / "nope.jsonl"), "nope.jsonl", "file not found")
    store = tmp_path / "torn.jsonl"
    RunStore(store).append(RunRecord(student_params=1, teacher_params=2, metrics={"eval_loss": 1.0}))
    with open(store, "a") as handle:
        handle.write('{"student_params": 5, "teach')
    assert_one_line_error(run_cli("runs", "validate", store), "torn.jsonl:2", "torn")
    # Reading commands other than validate warn and go on with the intact records.
    shown = run_cli("runs", "show", store)
    assert shown.returncode == 0 and "warning" in shown.stderr and "torn.jsonl:2" in shown.stderr


def test_empty_jsonl_and_bad_flag(tmp_path, run_cli):
    (tmp_path / "e.jsonl").write_text("")
    assert_one_line_error(run_cli("runs", "validate", tmp_path / "e.jsonl"), "empty file")
    assert_one_line_error(run_cli("runs", "frobnicate"), "invalid choice")


def test_nothing_half_written_on_bad_import(tmp_path, run_cli):
    (tmp_path / "bad.csv").write_text("student_params,teacher_params,eval_loss\n1M,10M,3\n2M,10M,nan\n")
    result = run_cli("runs", "import", tmp_path / "bad.csv", "--store", tmp_path / "s.jsonl")
    assert result.returncode == 2
    assert not (tmp_path / "s.jsonl").exists()


def test_export_to_a_missing_folder_is_one_line_and_exit_2(tmp_path, run_cli):
    (tmp_path / "a.csv").write_text(GOOD_CSV)
    result = run_cli("runs", "export", tmp_path / "a.csv", "--csv", tmp_path / "missing" / "x.csv")
    assert_one_line_error(result, "folder of the CSV", "does not exist", "x.csv")
    assert not (tmp_path / "missing").exists()
