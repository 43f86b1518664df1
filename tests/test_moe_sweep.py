"""MoE students end to end on a CPU: records, a killed sweep resumed, and bad input refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from capgap.commands.cli import main  # noqa: E402
from capgap.sizes.units import distill_flops  # noqa: E402
from capgap.runs.store import RunStore  # noqa: E402
from test_measure_sweep import _refused  # noqa: E402  (one line, exit 2, nothing written)

LADDER_FLAGS = ["--family", "gpt2", "--sizes", "L1-d64,L2-d64", "--tokens", "8k", "--vocab-size", "300",
                "--seq-len", "32", "--batch-tokens", "512", "--quiet"]
MOE_FLAGS = ["--students", "40k", "--tokens", "2k", "--student-init", "both", "--seq-len", "32",
             "--batch-tokens", "512", "--eval-tokens", "2k", "--no-wikitext", "--quiet",
             "--student-kind", "moe", "--experts", "4"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ladder(tmp_path_factory, tiny_corpus: Path) -> Path:
    out = tmp_path_factory.mktemp("moe-ladder") / "ladder"
    assert main(["ladder", "train", *LADDER_FLAGS, "--corpus", str(tiny_corpus), "--out", str(out)]) == 0
    return out


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_moe_sweep_records_kind_experts_and_active_size(ladder: Path, tiny_corpus: Path, tmp_path: Path,
                                                         capsys) -> None:
    store = tmp_path / "runs.jsonl"
    base = ["measure", "--teachers", str(ladder), "--corpus", str(tiny_corpus), "--runs", str(store)]
    assert main([*base, *MOE_FLAGS]) == 0
    assert "moe×4" in capsys.readouterr().out
    records = RunStore(store).load(strict=True)
    assert sorted((r.extra["teacher"], r.student_init) for r in records) == [
        ("gpt2-L1-d64", "pruned"), ("gpt2-L1-d64", "scratch"), ("gpt2-L2-d64", "pruned"), ("gpt2-L2-d64", "scratch")]
    for record in records:
        assert record.student_kind == "moe" and record.experts == 4
        assert abs(record.student_active_params - 40_000) <= 1_000  # the dense shape plus the routers
        assert record.student_params > record.student_active_params  # three more MLPs per layer
        assert record.flops == distill_flops(record.student_active_params, record.teacher_params, record.tokens)
        assert record.extra["balance_weight"] == 0.01 and record.extra["flops_student"] == "active"
    # The dense sweep of the same pairs is other runs: new ids, both kinds in one store.
    dense = [f for f in MOE_FLAGS if f not in ("--student-kind", "moe", "--experts", "4")]
    assert main([*base, *dense]) == 0
    both = RunStore(store).load(strict=True)
    assert len(both) == 8 == len({r.run_id for r in both})
    assert sorted({r.student_kind for r in both}) == ["dense", "moe"]


def test_killed_moe_sweep_resumes_without_duplicates(ladder: Path, tiny_corpus: Path, tmp_path: Path,
                                                     kill_after_first_record) -> None:
    store = tmp_path / "runs.jsonl"
    args = ["measure", "--teachers", str(ladder), "--corpus", str(tiny_corpus), "--runs", str(store), *MOE_FLAGS]
    env = kill_after_first_record(args, store, what="the MoE sweep")
    done_before = len(_lines(store))
    assert 1 <= done_before < 4
    finished = subprocess.run([sys.executable, "-m", "capgap", *args], env=env, capture_output=True, text=True,
                              timeout=300)
    assert finished.returncode == 0, finished.stderr
    lines = _lines(store)
    assert len(lines) == 4 == len({r["run_id"] for r in lines})
    assert all(r["student_kind"] == "moe" for r in lines)
    assert f"{done_before} already recorded, {4 - done_before} added" in finished.stdout


@pytest.mark.parametrize(("flags", "says"), [
    (["--student-kind", "moe", "--experts", "0"], "--experts 0 is too few"),
    (["--experts", "4"], "--experts 4 needs --student-kind moe"),
    (["--student-kind", "sparse"], "--student-kind 'sparse' is not known; accepted: dense, moe"),
    (["--student-kind", "moe", "--balance-weight", "-1"], "--balance-weight -1.0 must be 0 or more"),
])
def test_bad_moe_flags_are_refused(flags: list[str], says: str, tiny_corpus: Path, tmp_path: Path, capsys) -> None:
    store = tmp_path / "runs.jsonl"
    argv = ["measure", "--teachers", str(tmp_path / "unused"), "--corpus", str(tiny_corpus), "--runs", str(store),
            "--students", "40k", "--tokens", "2k", "--quiet", *flags]
    assert says in _refused(argv, capsys, store)


def test_a_family_without_an_mlp_to_split_is_refused(tmp_path: Path, capsys) -> None:
    from capgap.core.errors import InputError
    from capgap.measure.moe import check_family, to_moe

    with pytest.raises(InputError, match="no MLP to split into experts in a model of type 'llama'"):
        check_family("llama", where="teacher tiny-llama")
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=16))
    to_moe(model, 2, seed=0)
    with pytest.raises(InputError, match="no dense MLP in every block"):
        to_moe(model, 2, seed=0)  # already MoE: nothing dense left to split


def test_moe_students_use_the_teacher_cache(ladder: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    flags = [f for f in MOE_FLAGS if f != "both"]
    flags[flags.index("--student-init") + 1:flags.index("--student-init") + 1] = ["pruned"]
    modes = []
    for store in (tmp_path / "first.jsonl", tmp_path / "second.jsonl"):
        assert main(["measure", "--teachers", str(ladder), "--corpus", str(tiny_corpus), "--runs", str(store),
                     *flags, "--teacher-cache", str(cache)]) == 0
        records = RunStore(store).load(strict=True)
        assert {r.student_kind for r in records} == {"moe"} and len(records) == 2
        modes.append({r.extra["teacher_cache"] for r in records})
    assert modes == [{"written"}, {"read"}]  # the second sweep's students learn from the cached logits
