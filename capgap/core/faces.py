"""A package that stands where a module stood keeps that module's names, loaded on first use (PEP 562)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def forward_to(package: str, module: str) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package`` that answers the public names of ``module``.

    ``capgap.sizes``, ``capgap.fit``, ``capgap.plan`` and ``capgap.plots`` were modules before they were packages;
    ``from capgap.sizes import parse_size`` keeps working this way without the package importing its module
    (and its dependencies) until a name is asked for.
    """

    def __getattr__(name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        try:
            return getattr(importlib.import_module(module), name)
        except AttributeError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

    return __getattr__
