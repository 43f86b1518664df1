"""Test-wide settings: never touch the Hugging Face hub, draw figures off-screen."""

import os
import subprocess
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def run_cli():
    """Run `python -m capgap ARGS` in a subprocess; returns CompletedProcess (text)."""

    def run(*args: str, cwd: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "capgap", *map(str, args)], capture_output=True,
                              text=True, cwd=cwd, timeout=timeout)

    return run
