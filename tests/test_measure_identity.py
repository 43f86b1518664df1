"""End to end on a CPU: teacher identity, typed teacher tokens, ladder quality and the measure flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from capgap.commands.cli import main  # noqa: E402
from capgap.runs.store import load_runs  # noqa: E402

LADDER = ["--family", "gpt2", "--vocab-size", "300", "--seq-len", "32", "--batch-tokens", "512", "--quiet"]
SWEEP = ["--tokens", "2k", "--seq-len", "32", "--batch-tokens", "512", "--eval-tokens", "2k", "--quiet"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _train(out: Path, corpus: Path, sizes: str, tokens: str) -> None:
    assert main(["ladder", "train", *LADDER, "--sizes", sizes, "--tokens", tokens, "--corpus", str(corpus),
                 "--out", str(out)]) == 0


def _measure(ladder: Path, corpus: Path, store: Path, *extra: str) -> int:
    return main(["measure", "--teachers", str(ladder), "--corpus", str(corpus), "--runs", str(store), *SWEEP, *extra])


def _lines(store: Path) -> list[dict]:
    return [json.loads(line) for line in store.read_text().splitlines() if line.strip()]


def test_a_rung_retrained_in_place_gets_new_runs_and_a_fresh_teacher_cache(tmp_path, tiny_corpus):
    ladder, store, cache = tmp_path / "ladder", tmp_path / "runs.jsonl", tmp_path / "cache"
    _train(ladder, tiny_corpus, "L1-d64", "4k")
    sweep = ["--students", "40k", "--teacher-cache", str(cache)]
    assert _measure(ladder, tiny_corpus, store, *sweep) == 0
    (before,) = _lines(store)
    assert before["extra"]["teacher_cache"] == "written"

    _train(ladder, tiny_corpus, "L1-d64", "8k")  # more tokens: the same rung, same folder, new weights
    assert _measure(ladder, tiny_corpus, store, *sweep) == 0
    old, new = _lines(store)
    assert new["run_id"] != old["run_id"]  # not skipped as "already recorded"
    assert new["extra"]["teacher_fingerprint"] != old["extra"]["teacher_fingerprint"]
    assert new["extra"]["teacher_cache"] == "written"  # the old teacher's logits were not read
    assert new["teacher_tokens"] > old["teacher_tokens"] and new["teacher_loss"] != old["teacher_loss"]
    assert len(list(cache.iterdir())) == 2  # one cache per teacher identity

    assert _measure(ladder, tiny_corpus, store, *sweep) == 0  # the same teacher again: nothing new
    assert len(_lines(store)) == 2


def test_teacher_tokens_are_a_field_and_old_stores_load_into_it(tmp_path, tiny_corpus):
    ladder, store = tmp_path / "ladder", tmp_path / "runs.jsonl"
    _train(ladder, tiny_corpus, "L1-d64", "4k")
    assert _measure(ladder, tiny_corpus, store, "--students", "40k", "--no-wikitext") == 0
    (line,) = _lines(store)
    rung_tokens = int(next(r for r in (ladder / "ladder.csv").read_text().splitlines()[1:]).split(",")[4])
    assert line["teacher_tokens"] == rung_tokens
    assert "teacher_pretrain_tokens" not in line["extra"]
    assert set(line["metrics"]) == {"eval_loss"}  # --no-wikitext: no WikiText-2 evaluation
    assert "wikitext2_tokens" not in line["extra"]

    # A store written before the field existed kept the count in extra.teacher_pretrain_tokens.
    legacy = dict(line, extra={**line["extra"], "teacher_pretrain_tokens": rung_tokens})
    del legacy["teacher_tokens"]
    old_store = tmp_path / "old.jsonl"
    old_store.write_text(json.dumps(legacy) + "\n")
    (record,) = load_runs(old_store)
    assert record.teacher_tokens == rung_tokens and "teacher_pretrain_tokens" not in record.extra
    assert record.run_id == line["run_id"]


def test_the_shipped_stores_load_with_teacher_tokens():
    for shipped in (Path(__file__).resolve().parents[1] / "data" / "runs").glob("*.jsonl"):
        assert all(r.teacher_tokens for r in load_runs(shipped)), shipped


def test_dsl_fit_on_a_sweeps_own_output_assumes_nothing(tmp_path, tiny_corpus, capsys):
    """A sweep's records carry what the dsl law needs: nothing is assumed about the teachers' tokens."""
    ladder, store, law = tmp_path / "ladder", tmp_path / "runs.jsonl", tmp_path / "law.json"
    _train(ladder, tiny_corpus, "L1-d32,L1-d64,L2-d64", "4k")
    assert _measure(ladder, tiny_corpus, store, "--students", "20k,30k", "--no-wikitext") == 0
    assert main(["fit", str(store), "--law", "dsl", "--bootstrap", "20", "--out", str(law)]) == 0
    provenance = json.loads(law.read_text())["provenance"]
    assert "assumed" not in provenance
    rung_tokens = {int(line.split(",")[4]) for line in (ladder / "ladder.csv").read_text().splitlines()[1:]}
    assert "extra.teacher_tokens" not in provenance and f"{rung_tokens.pop():.3g}" in provenance


def test_ladder_train_records_and_measure_repeats_a_quality_inversion(tmp_path, tiny_corpus, capsys):
    ladder = tmp_path / "ladder"
    _train(ladder, tiny_corpus, "L1-d32,L1-d64", "4k")
    csv = ladder / "ladder.csv"
    rows = [line.split(",") for line in csv.read_text().splitlines()]
    assert rows[0][-1] == "not_better_than"
    # Make the larger rung worse than the smaller one, as an undertrained rung would be.
    rows[2][5] = str(float(rows[1][5]) + 0.5)
    csv.write_text("\n".join(",".join(r) for r in rows) + "\n")
    capsys.readouterr()
    _train(ladder, tiny_corpus, "L1-d32,L1-d64", "4k")  # nothing to train; the table is re-marked
    err = capsys.readouterr().err
    assert "warning: rung gpt2-L1-d64" in err and "not better than the smaller gpt2-L1-d32" in err
    assert csv.read_text().splitlines()[2].endswith(",gpt2-L1-d32")
    assert csv.read_text().splitlines()[1].endswith(",")

    assert _measure(ladder, tiny_corpus, tmp_path / "runs.jsonl", "--students", "20k", "--no-wikitext") == 0
    err = capsys.readouterr().err
    assert "warning: teacher gpt2-L1-d64" in err and "not better than the smaller gpt2-L1-d32" in err


@pytest.mark.parametrize("content, message", [
    ("", "empty file"),
    ("name,params,params_nonembed,path,tokens,teacher_loss\n", "no rungs"),
    ("name,params,params_nonembed,path,tokens,teacher_loss\nr1,100,50,r1,,4.2\n", "blank cell in column(s) tokens"),
    ("name,params,params_nonembed,path,tokens,teacher_loss\nr1,many,50,r1,10,4.2\n", "column params"),
])
def test_bad_ladder_tables_are_one_line_and_exit_2(tmp_path, tiny_corpus, capsys, content, message):
    csv = tmp_path / "ladder.csv"
    csv.write_text(content)
    store = tmp_path / "runs.jsonl"
    assert main(["measure", "--teachers", str(csv), "--students", "20k", "--corpus", str(tiny_corpus),
                 "--runs", str(store), *SWEEP]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and str(csv) in err
    assert not store.exists()


def test_a_student_size_out_of_reach_is_refused_with_the_reachable_range(tmp_path, tiny_corpus, capsys):
    ladder, store = tmp_path / "ladder", tmp_path / "runs.jsonl"
    _train(ladder, tiny_corpus, "L1-d32", "4k")
    capsys.readouterr()
    assert _measure(ladder, tiny_corpus, store, "--students", "100") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "student size 100 from teacher gpt2-L1-d32" in err
    assert "reachable from this teacher:" in err and not store.exists()
