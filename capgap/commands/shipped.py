"""What ships with capgap, by name: run stores, law files, ladders, corpora and reference tables.

Every shipped file has a short name (``shakespeare-study``, ``cpu-demo``,
``minima_family_benchmarks``) that works wherever a path is taken, from an
install as from the checkout. A real file or folder of that name always wins
over the shipped one. ``capgap data`` lists them with their paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from capgap.core.resources import data_root

Kind = Literal["runs", "law", "ladder", "corpus", "reference"]
KINDS: tuple[Kind, ...] = ("runs", "law", "ladder", "corpus", "reference")
_TABLE_SUFFIXES = (".jsonl", ".csv")


class ShippedData(BaseModel):
    """One shipped item: its name, what it is, where the installed package keeps it."""

    model_config = ConfigDict(frozen=True)
    kind: Kind
    name: str
    path: Path | None  # None: built into the code (the GPT2 and Pythia ladders)
    about: str = ""


def _runs_and_ladders(root: Path) -> list[ShippedData]:
    items = []
    for path in sorted((root / "runs").iterdir()):
        if path.suffix not in _TABLE_SUFFIXES:
            continue
        is_ladder = path.stem.endswith("-ladder") and path.suffix == ".csv"
        items.append(ShippedData(kind="ladder" if is_ladder else "runs", name=path.stem, path=path,
                                 about="teacher ladder (name,params)" if is_ladder else "measured runs"))
    return items


def _known_ladders() -> list[ShippedData]:
    from capgap.sizes.ladders import KNOWN_LADDERS

    return [ShippedData(kind="ladder", name=name, path=None,
                        about=f"{models[0].name} to {models[-1].name}, exact parameter counts")
            for name, models in KNOWN_LADDERS.items()]


def _laws() -> list[ShippedData]:
    from capgap.laws.files import SHIPPED_LAWS, shipped_law_path

    return [ShippedData(kind="law", name=name, path=shipped_law_path(name), about=law.label)
            for name, law in SHIPPED_LAWS.items()]


def _corpora() -> list[ShippedData]:
    from capgap.measure.corpus import NAMED_CORPORA  # torch-free: paths only

    return [ShippedData(kind="corpus", name=name, path=path, about="text corpus (--corpus)")
            for name, path in NAMED_CORPORA.items()]


def _reference(root: Path) -> list[ShippedData]:
    return [ShippedData(kind="reference", name=path.stem, path=path, about="published table (capgap pareto)")
            for path in sorted((root / "reference").glob("*.csv"))]


def shipped_data() -> list[ShippedData]:
    """Everything that ships, by kind (runs, law, ladder, corpus, reference), then name."""
    root = data_root()
    items = [*_runs_and_ladders(root), *_known_ladders(), *_laws(), *_corpora(), *_reference(root)]
    return sorted(items, key=lambda item: (KINDS.index(item.kind), item.name))


def _file_names(item: ShippedData) -> set[str]:
    """The names a shipped file answers to: its short name, and its file name (with the suffix)."""
    return {item.name.lower(), item.path.name.lower()}


def shipped_path(value: str | Path) -> str:
    """A path argument as given, or, when no such file or folder exists, the shipped file it names.

    Names of run stores, ladders, law files and reference tables resolve (``shakespeare-study`` ->
    .../data/runs/shakespeare-study.jsonl); anything else comes back unchanged, so the reader's own
    'not found' message still names what was given.
    """
    given = str(value)
    if Path(given).exists():
        return given
    if given.startswith("data/"):  # the checkout's path to a shipped file, given outside the checkout
        inside = data_root() / given.removeprefix("data/")
        return str(inside) if inside.exists() else given
    key = given.lower()
    for item in shipped_data():
        if item.kind != "corpus" and item.path is not None and key in _file_names(item):
            return str(item.path)
    return given


def data_lines() -> list[str]:
    """`capgap data`: one line per shipped item, grouped by kind, with its path."""
    items = shipped_data()
    width = max(len(item.name) for item in items)
    lines = [f"shipped data (under {data_root()}); give a name wherever a path is taken:"]
    for kind in KINDS:
        chosen = [item for item in items if item.kind == kind]
        if chosen:
            lines.append(f"{kind}:")
            lines += [f"  {item.name:<{width}}  {item.path or '(built in)'}  ({item.about})" for item in chosen]
    return lines

