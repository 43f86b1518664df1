"""Where the shipped data lives: inside the installed package, or the checkout's data/ folder.

A wheel carries the repository's top-level ``data/`` as ``capgap/data/``
(pyproject.toml maps one onto the other), found here through
``importlib.resources``. An editable install or a plain checkout has no
``capgap/data/``, so the checkout's ``data/`` beside the package serves it.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

from capgap.core.errors import InputError


@cache
def data_root() -> Path:
    """The folder holding laws/, runs/, corpora/, reference/ and tokenizers/."""
    packaged = files("capgap") / "data"
    if packaged.is_dir():  # a wheel install: unpacked into site-packages, so a real folder
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[2] / "data"  # capgap/core/resources.py -> the checkout
    if checkout.is_dir():
        return checkout
    raise InputError("capgap's shipped data is missing (neither capgap/data/ in the installed package nor data/ "
                     "in the checkout); reinstall capgap", where=str(packaged))


def data_path(*parts: str) -> Path:
    """A path under the shipped data folder, e.g. ``data_path('laws', 'zhang2023.json')``."""
    return data_root().joinpath(*parts)
