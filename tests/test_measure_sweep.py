"""End to end on a CPU: a tiny two-rung ladder, both student inits, records, resume, SIGKILL, bad input."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from capgap.commands.cli import main  # noqa: E402
from capgap.sizes.units import distill_flops  # noqa: E402
from capgap.runs.store import RunStore  # noqa: E402

# Tiny everything: a 300-token BPE, 32-token windows, 2-layer 64-wide teachers, a few thousand tokens.
LADDER_FLAGS = ["--family", "gpt2", "--sizes", "L1-d64,L2-d64", "--tokens", "8k", "--vocab-size", "300",
                "--seq-len", "32", "--batch-tokens", "512", "--quiet"]
SWEEP_FLAGS = ["--students", "40k", "--tokens", "2k", "--student-init", "both", "--seq-len", "32",
               "--batch-tokens", "512", "--eval-tokens", "2k", "--quiet"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # the test machine is shared; tiny models gain nothing from threads


@pytest.fixture(scope="module")
def corpus(tiny_corpus: Path) -> Path:
    return tiny_corpus


@pytest.fixture(scope="module")
def ladder(tmp_path_factory, corpus) -> Path:
    out = tmp_path_factory.mktemp("ladder") / "ladder"
    assert main(["ladder", "train", *LADDER_FLAGS, "--corpus", str(corpus), "--out", str(out)]) == 0
    return out


def _store_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_ladder_checkpoints_load_and_table_matches(ladder: Path) -> None:
    import pandas as pd
    from transformers import AutoModelForCausalLM, AutoTokenizer

    table = pd.read_csv(ladder / "ladder.csv")
    assert list(table.columns) == ["name", "params", "params_nonembed", "path", "tokens", "teacher_loss", "not_better_than"]
    assert list(table["name"]) == ["gpt2-L1-d64", "gpt2-L2-d64"]
    for row in table.to_dict("records"):
        model = AutoModelForCausalLM.from_pretrained(ladder / row["path"])
        tokenizer = AutoTokenizer.from_pretrained(ladder / row["path"])
        assert sum(p.numel() for p in model.parameters()) == row["params"]
        assert len(tokenizer) == 300 == model.config.vocab_size
        assert row["tokens"] >= 8000 and 0 < row["teacher_loss"] < math.log(300) + 1
        assert (ladder / row["path"] / "model.safetensors").is_file()


def test_sweep_records_both_inits_and_rerun_adds_nothing(ladder: Path, corpus: Path, tmp_path: Path, capsys) -> None:
    store = tmp_path / "runs.jsonl"
    argv = ["measure", "--teachers", str(ladder), "--corpus", str(corpus), "--runs", str(store), *SWEEP_FLAGS]
    assert main(argv) == 0
    records = RunStore(store).load(strict=True)
    assert sorted((r.extra["teacher"], r.student_init) for r in records) == [
        ("gpt2-L1-d64", "pruned"), ("gpt2-L1-d64", "scratch"), ("gpt2-L2-d64", "pruned"), ("gpt2-L2-d64", "scratch")]
    for record in records:
        assert record.family == "gpt2" and record.source == "capgap"
        assert record.student_params < record.teacher_params
        assert abs(record.student_params - 40_000) <= 500  # the pruner's tolerance: half a neuron per layer
        assert record.student_params_nonembed < record.student_params
        assert record.flops == distill_flops(record.student_params, record.teacher_params, record.tokens)
        assert record.tokens >= 2000 and record.alpha == 0.5 and record.temperature == 1.0
        assert all(math.isfinite(v) for v in record.metrics.values())
        assert set(record.metrics) == {"eval_loss", "wikitext2_ppl"}
        assert math.isfinite(record.teacher_loss)
        for key in ("wall_s", "tokens_per_s", "hardware", "code_version", "target_params", "wikitext2_tokens"):
            assert key in record.extra
    pruned = [r for r in records if r.student_init == "pruned"]
    scratch = {r.extra["teacher"]: r for r in records if r.student_init == "scratch"}
    for record in pruned:
        assert math.isfinite(record.extra["pruned_loss_before"])
        # Same architecture for both inits of a pair: only the weights differ.
        assert record.student_params == scratch[record.extra["teacher"]].student_params
    capsys.readouterr()
    before = store.read_bytes()
    assert main(argv) == 0
    assert store.read_bytes() == before
    assert "4 pairs: 4 already recorded, 0 added" in capsys.readouterr().out


def test_shards_split_the_sweep(ladder: Path, corpus: Path, tmp_path: Path, capsys) -> None:
    store = tmp_path / "runs.jsonl"
    base = ["measure", "--teachers", str(ladder / "ladder.csv"), "--corpus", str(corpus), "--runs", str(store),
            *SWEEP_FLAGS, "--student-init", "scratch"]
    assert main([*base, "--shard", "0/2"]) == 0
    assert len(_store_lines(store)) == 1
    assert "1 pairs in shard 0/2: 0 already recorded, 1 added" in capsys.readouterr().out
    assert main([*base, "--shard", "1/2"]) == 0
    assert sorted(r["extra"]["teacher"] for r in _store_lines(store)) == ["gpt2-L1-d64", "gpt2-L2-d64"]


def test_sweep_killed_mid_run_resumes_without_loss_or_duplicates(ladder: Path, corpus: Path, tmp_path: Path,
                                                                 kill_after_first_record) -> None:
    store = tmp_path / "runs.jsonl"
    args = ["measure", "--teachers", str(ladder), "--corpus", str(corpus), "--runs", str(store), *SWEEP_FLAGS]
    cmd = [sys.executable, "-m", "capgap", *args]
    env = kill_after_first_record(args, store, what="the sweep")
    done_before = len(_store_lines(store))
    assert 1 <= done_before < 4
    finished = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    ids = [r["run_id"] for r in _store_lines(store)]
    assert len(ids) == 4 == len(set(ids))
    assert f"{done_before} already recorded, {4 - done_before} added" in finished.stdout


# -- bad input: one line, exit 2, nothing written ----------------------------------

def _refused(argv: list[str], capsys, store: Path) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("capgap: error:") and "\n" not in err and "Traceback" not in err
    assert not store.exists()
    return err


@pytest.fixture
def sweep_args(ladder: Path, corpus: Path, tmp_path: Path):
    store = tmp_path / "runs.jsonl"

    def args(*changes: str, teachers: str | None = None) -> list[str]:
        flags = dict(zip(SWEEP_FLAGS[0:-1:2], SWEEP_FLAGS[1::2]))
        flags.update(dict(zip(changes[0::2], changes[1::2])))
        return ["measure", "--teachers", teachers or str(ladder), "--corpus", str(corpus), "--runs", str(store),
                *[x for kv in flags.items() for x in kv], "--quiet"]

    return args, store


def test_bad_teachers_are_refused(sweep_args, capsys, tmp_path: Path) -> None:
    args, store = sweep_args
    assert "not found" in _refused(args(teachers=str(tmp_path / "no-such-ladder")), capsys, store)
    err = _refused(args(teachers="EleutherAI/pythia-410m"), capsys, store)
    assert "unreachable" in err and "pythia-410m" in err


def test_student_not_smaller_than_teacher_is_refused(sweep_args, capsys) -> None:
    args, store = sweep_args
    err = _refused(args("--students", "5M"), capsys, store)
    assert "not smaller than any teacher" in err


def test_mismatched_tokenizers_are_refused(sweep_args, ladder: Path, corpus: Path, capsys, tmp_path: Path) -> None:
    from capgap.measure.tokenizer import train_bpe

    other = tmp_path / "other-teacher"
    shutil.copytree(ladder / "gpt2-L2-d64", other)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (other / name).unlink(missing_ok=True)
    train_bpe(corpus.read_text()[:40_000], 290).save_pretrained(other)
    args, store = sweep_args
    err = _refused(args(teachers=f"{ladder / 'gpt2-L1-d64'},{other}"), capsys, store)
    assert "different tokenizers" in err


def test_corpus_too_small_says_how_many_tokens(sweep_args, capsys) -> None:
    args, store = sweep_args
    err = _refused(args("--tokens", "50M"), capsys, store)
    assert "corpus too small" in err and "training tokens" in err


def test_unwritable_store_is_refused(ladder: Path, corpus: Path, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    store = blocker / "runs.jsonl"
    argv = ["measure", "--teachers", str(ladder), "--corpus", str(corpus), "--runs", str(store), *SWEEP_FLAGS]
    assert "not writable" in _refused(argv, capsys, store)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_refused(sweep_args, capsys) -> None:
    args, store = sweep_args
    assert "CUDA is not available" in _refused(args("--device", "cuda"), capsys, store)


def test_a_sequence_longer_than_the_ladders_context_is_refused_before_any_run(sweep_args, capsys) -> None:
    # The ladder was trained with 32-token windows (n_positions 32): 64 would index past its position table.
    args, store = sweep_args
    err = _refused(args("--seq-len", "64"), capsys, store)
    assert "--seq-len 64" in err and "teacher gpt2-L1-d64" in err and "32 positions (n_positions" in err
    assert "give --seq-len 32 or less" in err


def test_precheck_names_the_student_and_a_tokenizer_past_the_vocabulary() -> None:
    from types import SimpleNamespace

    from capgap.core.errors import InputError
    from capgap.measure.precheck import check_models

    with pytest.raises(InputError, match=r"context of the 40k student of t: 16 positions \(max_position_embeddings"):
        check_models([("the 40k student of t", {"max_position_embeddings": 16})], 32, {})
    teacher = SimpleNamespace(name="t", config={"n_positions": 64, "vocab_size": 300})
    with pytest.raises(InputError, match="tokenizer of teacher t has 512 tokens, but its model's vocabulary holds 300"):
        check_models([("teacher t", teacher.config)], 32, {"teacher t": 512})


@pytest.mark.parametrize("fault", ["nan", "raise"])
def test_a_failing_run_is_recorded_as_failed_and_the_sweep_goes_on(ladder: Path, corpus: Path, tmp_path: Path,
                                                                   capsys, monkeypatch, fault: str) -> None:
    import capgap.measure.train as train_module

    real, calls = train_module.mean_over_processes, []

    def faulty(value, context):  # noqa: ANN001, ANN202 -- the first run's loss goes wrong at its 2nd micro-batch
        calls.append(1)
        if len(calls) == 2:
            if fault == "raise":
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
            return real(value * float("nan"), context)
        return real(value, context)

    store = tmp_path / "runs.jsonl"
    argv = ["measure", "--teachers", str(ladder), "--corpus", str(corpus), "--runs", str(store), *SWEEP_FLAGS]
    monkeypatch.setattr(train_module, "mean_over_processes", faulty)
    assert main(argv) == 0
    out, err = capsys.readouterr()
    reason = "loss is nan at step" if fault == "nan" else "RuntimeError: CUDA error"
    assert "4 pairs: 0 already recorded, 3 added" in out and "1 failed" in out and reason in err
    lines = _store_lines(store)
    failed = [line for line in lines if line.get("status") == "failed"]
    assert len(lines) == 4 and len(failed) == 1 and reason in failed[0]["reason"]
    assert {"teacher", "target", "init", "tokens", "seed"} <= set(failed[0]["config"])
    with pytest.warns(UserWarning, match=r"1 failed run\(s\) skipped"):
        assert len(RunStore(store).load()) == 3  # what fit reads
    monkeypatch.setattr(train_module, "mean_over_processes", real)
    assert main(argv) == 0  # a rerun skips the failed run, and says so
    assert "0 added" in capsys.readouterr().out and len(_store_lines(store)) == 4
    assert main([*argv, "--retry-failed"]) == 0
    assert "1 added" in capsys.readouterr().out
    records = RunStore(store).load(strict=True)  # nothing failed is left, nothing lost or twice
    assert len(records) == 4 == len({r.run_id for r in records}) and RunStore(store).failed() == {}
