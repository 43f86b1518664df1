"""Data parallel: 2 gloo processes on halves of each global batch take the same steps as one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from capgap.measure.parallel import DistributedContext, loss_normalizer, shard_batch  # noqa: E402

WORKER = Path(__file__).parent / "helpers" / "ddp_distill_worker.py"


def run_worker(out: Path, nproc: int | None, kind: str = "dense") -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": str(Path(__file__).parent.parent)}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    prefix = [sys.executable] if nproc is None else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    done = subprocess.run([*prefix, str(WORKER), str(out), kind], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dense", "moe"])
def test_two_gloo_processes_match_one_process_on_the_same_global_batch(tmp_path, kind):
    single = run_worker(tmp_path / "single.pt", None, kind)
    parallel = run_worker(tmp_path / "ddp.pt", 2, kind)
    assert single["world_size"] == 1 and parallel["world_size"] == 2
    # Same losses at every step (the logged loss is the global-batch loss) ...
    assert parallel["losses"] == pytest.approx(single["losses"], rel=1e-5)
    # ... and the same weights after 3 SGD steps, so the gradients matched too.
    moved = 0
    for name, weight in single["state"].items():
        torch.testing.assert_close(parallel["state"][name], weight, rtol=1e-4, atol=1e-5, msg=name)
        moved += 1
    assert moved > 10


def test_shard_and_normalizer_reassemble_the_global_mean():
    labels = torch.tensor([[1, 2, -100, -100], [3, 4, 5, 6]])
    contexts = [DistributedContext(rank=r, world_size=2) for r in range(2)]
    shards = [shard_batch(labels, c) for c in contexts]
    assert torch.equal(torch.cat(shards), labels)
    # one process: the plain count of labelled tokens
    assert loss_normalizer(labels, DistributedContext()).item() == 6
    with pytest.raises(ValueError, match="divisible"):
        shard_batch(torch.zeros(3, 2), contexts[0])
