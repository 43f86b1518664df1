import json
import multiprocessing
import signal
import subprocess
import sys
import time
import warnings

import pandas as pd
import pytest

from capgap.core.errors import InputError
from capgap.runs.records import RunRecord
from capgap.runs.store import RunStore, TornLineWarning, load_runs, read_csv_runs


def make(i: int, **overrides) -> RunRecord:
    base = dict(family="gpt2", student_params=1_000_000 + i, teacher_params=10_000_000, tokens=1000, seed=i,
                metrics={"eval_loss": 3.0 + i / 100})
    base.update(overrides)
    return RunRecord(**base)


def test_append_load_and_dedupe(tmp_path):
    store = RunStore(tmp_path / "runs.jsonl")
    assert store.append(make(1)) is True
    assert store.append(make(1)) is False  # same run id: not written twice
    assert store.extend([make(1), make(2), make(2), make(3)]) == 2
    records = store.load()
    assert [r.seed for r in records] == [1, 2, 3]
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 3


def test_frame_has_one_row_per_run_and_metrics_as_columns(tmp_path):
    store = RunStore(tmp_path / "runs.jsonl")
    store.extend([make(1), make(2, metrics={"eval_loss": 2.0, "lambada_acc": 0.4})])
    frame = store.frame()
    assert len(frame) == 2
    assert frame.loc[1, "lambada_acc"] == 0.4 and pd.isna(frame.loc[0, "lambada_acc"])
    assert list(frame["eval_loss"]) == [3.01, 2.0]


def _append_many(path: str, worker: int) -> None:
    store = RunStore(path)
    for i in range(50):
        store.append(make(worker * 1000 + i))


def test_eight_processes_appending_fifty_each_leave_four_hundred_intact_records(tmp_path):
    path = str(tmp_path / "runs.jsonl")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(path, w)) for w in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
        assert worker.exitcode == 0
    lines = open(path).read().splitlines()
    assert len(lines) == 400
    records = [RunRecord.model_validate_json(line) for line in lines]  # every line intact
    assert len({r.run_id for r in records}) == 400


def test_torn_last_line_is_reported_and_skipped_never_merged(tmp_path):
    path = tmp_path / "runs.jsonl"
    store = RunStore(path)
    store.extend([make(1), make(2)])
    whole = make(3).model_dump_json()
    with open(path, "a") as handle:
        handle.write(whole[: len(whole) // 2])  # a writer killed mid-write
    with pytest.warns(TornLineWarning, match=r"runs.jsonl:3"):
        assert [r.seed for r in store.load()] == [1, 2]
    with pytest.raises(InputError, match=r"runs.jsonl:3: torn"):
        store.load(strict=True)
    # The next append starts on its own line: the torn fragment is not merged into it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TornLineWarning)
        assert store.append(make(4))
        assert [r.seed for r in store.load()] == [1, 2, 4]


KILLED_WRITER = """
import sys
from capgap.runs.records import RunRecord
from capgap.runs.store import RunStore
store = RunStore(sys.argv[1])
for i in range(100000):
    store.append(RunRecord(student_params=1000 + i, teacher_params=10**7, metrics={"eval_loss": 1.0}))
"""


def test_writer_killed_by_sigkill_leaves_only_whole_records(tmp_path):
    path = tmp_path / "runs.jsonl"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)])
    deadline = time.time() + 60
    while time.time() < deadline and (not path.exists() or path.stat().st_size < 20_000):
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    with warnings.catch_warnings():
        warnings.simplefilter("error", TornLineWarning)  # a single write() per record cannot tear here
        records = RunStore(path).load(strict=True)
    assert len(records) > 10
    assert len({r.run_id for r in records}) == len(records)
    assert RunStore(path).append(RunRecord(student_params=1, teacher_params=2, metrics={"eval_loss": 1.0}))


def test_csv_round_trip(tmp_path):
    store = RunStore(tmp_path / "runs.jsonl")
    originals = [make(1, student_params_nonembed=500_000, teacher_loss=2.5, flops=1e12, alpha=0.5, temperature=2.0,
                      student_init="pruned", extra={"corpus": "shakespeare"}),
                 make(2, metrics={"eval_loss": 2.9, "lambada_acc": 0.31})]
    store.extend(originals)
    assert store.export_csv(tmp_path / "runs.csv") == 2
    back = read_csv_runs(tmp_path / "runs.csv")
    assert back == originals
    other = RunStore(tmp_path / "other.jsonl")
    assert other.import_csv(tmp_path / "runs.csv") == 2
    assert other.import_csv(tmp_path / "runs.csv") == 0


def test_csv_import_contract(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("student_params,teacher_params,tokens,eval_loss,my_score,note\n"
                    "70M,410M,1e6,3.1,0.5,first\n"
                    "70M,1.4B,1e6,3.0,,second\n")
    first, second = read_csv_runs(path)
    assert first.student_params == 70_000_000 and first.teacher_params == 410_000_000
    assert first.metrics == {"eval_loss": 3.1, "my_score": 0.5}  # unknown numeric columns are metrics
    assert second.metrics == {"eval_loss": 3.0}
    assert first.extra == {"note": "first"}


@pytest.mark.parametrize("content, message", [
    ("teacher_params,eval_loss\n1M,3\n", "missing required column(s) student_params"),
    ("student_params,teacher_params,eval_loss\n-5,10M,3\n", ":2: column student_params"),
    ("student_params,teacher_params,eval_loss\nabc,10M,3\n", ":2: column student_params"),
    ("student_params,teacher_params,eval_loss\n1.3X,10M,3\n", "'1.3X'"),
    ("student_params,teacher_params,eval_loss\n1M,10M,3\n2M,10M,nan\n", ":3: column eval_loss: 'nan' is not finite"),
    ("student_params,teacher_params,eval_loss\n1M,10M,inf\n", "not finite"),
    ("student_params,teacher_params,eval_loss\n1M,10M,3\n1M,10M,3.1\n", ":3: duplicate run_id"),
    ("", "empty file"),
    ("student_params,teacher_params,note\n1M,10M,x\n", "no metric column"),
])
def test_csv_bad_input_names_file_row_and_problem(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        read_csv_runs(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_load_runs_reads_csv_and_jsonl_and_refuses_others(tmp_path):
    store = RunStore(tmp_path / "a.jsonl")
    store.extend([make(1), make(2)])
    store.export_csv(tmp_path / "b.csv")
    with pytest.warns(UserWarning, match=r"2 exact repeat\(s\) of runs kept once"):
        assert len(load_runs([tmp_path / "a.jsonl", tmp_path / "b.csv"])) == 2  # same runs, kept once
    (tmp_path / "c.txt").write_text("x")
    with pytest.raises(InputError, match="unknown run file type"):
        load_runs(tmp_path / "c.txt")
    with pytest.raises(InputError, match="file not found"):
        load_runs(tmp_path / "missing.jsonl")


def test_jsonl_duplicate_ids_inside_one_file_are_refused_when_strict(tmp_path):
    path = tmp_path / "dup.jsonl"
    line = make(1).model_dump_json()
    path.write_text(line + "\n" + line + "\n")
    with pytest.raises(InputError, match=r"dup.jsonl:2: duplicate run_id"):
        RunStore(path).load(strict=True)


def test_invalid_record_in_store_names_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    data = json.loads(make(1).model_dump_json())
    data["metrics"] = {"eval_loss": "NaN"}
    path.write_text(make(2).model_dump_json() + "\n" + json.dumps(data) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl:2: metrics"):
        RunStore(path).load()


def test_unwritable_store_is_a_clear_error(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(InputError, match="not writable"):
        RunStore(tmp_path / "a_file" / "runs.jsonl").append(make(1))


def test_an_append_reads_only_what_was_added_since_the_last_one(tmp_path, monkeypatch):
    import capgap.runs.store as store_module

    path = tmp_path / "runs.jsonl"
    RunStore(path).extend([make(i) for i in range(200)])  # a long sweep's store so far
    parsed = []
    real = store_module._line_run_id
    monkeypatch.setattr(store_module, "_line_run_id", lambda line, where: parsed.append(line) or real(line, where=where))
    store = RunStore(path)
    assert store.append(make(200)) is True
    assert len([line for line in parsed if line]) == 200  # the first append reads the file once
    RunStore(path).append(make(201))  # another writer appends a record
    parsed.clear()
    assert store.append(make(202)) is True
    assert len([line for line in parsed if line]) == 2  # our last record and the other writer's, not the 201 before
    assert store.append(make(201)) is False  # the other writer's record is known
    assert [r.seed for r in store.load()] == list(range(203))


def test_teacher_tokens_field_and_the_legacy_extra_key():
    record = make(1, teacher_tokens=1.5e6)
    assert record.teacher_tokens == 1_500_000
    legacy = RunRecord.model_validate({**make(1).model_dump(), "run_id": "", "extra": {"teacher_pretrain_tokens": 1500000}})
    assert legacy.teacher_tokens == 1_500_000 and legacy.extra == {}
    assert legacy.run_id == record.run_id  # the id counts the teacher's tokens, wherever they were written
    assert make(1).run_id != record.run_id
    with pytest.raises(ValueError):
        make(1, teacher_tokens=0)
