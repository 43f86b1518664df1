"""The package layout (docs/architecture.md): few top-level entries, no private names across modules, old paths
kept for a release. The layer order itself is import-linter's contract, checked by `make test` (lint-imports)."""

from __future__ import annotations

import ast
import importlib
import sys
import tomllib
import warnings
from pathlib import Path

import pytest

import capgap

PACKAGE = Path(capgap.__file__).parent
ROOT = PACKAGE.parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private_imports(path: Path) -> list[str]:
    """Underscore names one module takes from another: ``from capgap.x import _y`` or ``x._y`` on an imported module."""
    here = _module_name(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    modules: dict[str, str] = {}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("capgap"):
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and node.module != here:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: from {node.module} import {alias.name}")
                modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("capgap"):
                    modules[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_module_imports_another_modules_private_names():
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in _private_imports(path)]
    assert found == []


def test_the_private_name_check_sees_both_forms(tmp_path):
    probe = PACKAGE / "runs" / "_probe_for_test.py"  # a module inside the package, so its name resolves
    probe.write_text("from capgap.fit.onestage import _IRLS_STEPS\nimport capgap.fit.solver as solver\nx = solver._hidden\n")
    try:
        found = _private_imports(probe)
    finally:
        probe.unlink()
    assert len(found) == 2 and "_IRLS_STEPS" in found[0] and "solver._hidden" in found[1]


def test_the_top_level_shows_the_pipeline_in_about_ten_entries():
    entries = sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__" and not p.name.endswith(".egg-info"))
    packages = [name for name in entries if (PACKAGE / name / "__init__.py").exists()]
    assert set(packages) == {"commands", "core", "fit", "laws", "measure", "plan", "plots", "recommender", "runs",
                             "sizes"}
    assert set(entries) - set(packages) == {"__init__.py", "__main__.py"}


def test_every_package_ships_in_the_wheel():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {_module_name(init) for init in PACKAGE.rglob("__init__.py")}
    assert on_disk - listed == set()


@pytest.mark.parametrize("old", sorted(capgap.MOVED_MODULES))
def test_an_old_module_path_imports_its_new_home_with_a_deprecation_warning(old):
    new = capgap.MOVED_MODULES[old]
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)  # one object: a name set on either is set on both
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)
    sys.modules.pop(old, None)


def test_the_public_api_and_the_old_module_faces_still_answer():
    assert callable(capgap.recommend) and callable(capgap.fit_law)
    assert capgap.RunStore.__module__ == "capgap.runs.store" and capgap.RunRecord.__module__ == "capgap.runs.records"
    from capgap.fit import HUBER_K
    from capgap.plan import plan_runs
    from capgap.plots import law_figure
    from capgap.sizes import parse_size

    assert parse_size("1.3B") == 1_300_000_000 and HUBER_K > 0 and callable(plan_runs) and callable(law_figure)
    with pytest.raises(ImportError):
        from capgap.sizes import no_such_name  # noqa: F401


def test_the_law_family_modules_are_the_ones_that_register_a_law():
    from capgap.laws.base import FAMILY_MODULES

    registering = {path.stem for path in (PACKAGE / "laws").glob("*.py") if "@register_law(" in path.read_text()}
    assert set(FAMILY_MODULES) == registering


def test_results_are_typed_fields_not_extras_read_back():
    # Law files may carry keys of older versions (extra fields load), but capgap reads only its typed fields.
    readers = [str(path.relative_to(ROOT)) for path in PACKAGE.rglob("*.py") if "model_extra" in path.read_text()]
    assert readers == []


def test_the_laws_know_nothing_of_fitting():
    # A law family is its formula, its parameters and how it reads a law file; the fit sits above it.
    fitting = [f"{path.relative_to(ROOT)}: {line.strip()}" for path in sorted((PACKAGE / "laws").glob("*.py"))
               for line in path.read_text().splitlines()
               if line.lstrip().startswith(("from capgap.fit", "import capgap.fit"))]
    assert fitting == []
