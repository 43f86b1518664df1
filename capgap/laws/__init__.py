"""Law families of the optimal teacher, one module each, one common face (base.Law)."""

from pathlib import Path

from capgap.laws.base import FitOptions, Law, LawFile, TeacherEstimate, load_law, register_law

__all__ = ["SHIPPED_LAWS", "FitOptions", "Law", "LawFile", "TeacherEstimate", "default_law_path", "load_law",
           "register_law", "shipped_law_path"]

# Law files that ship under data/laws/, by the name users give to --law.
SHIPPED_LAWS = {
    "default": "default.json",  # refitted from capgap's own measured runs (data/runs/)
    "reference": "reference-zhang2023.json",  # the published reading T* = 2.5 S, no interval
}


def shipped_law_path(name: str) -> Path:
    """A shipped law file under data/laws/ at the repository root (editable installs)."""
    return Path(__file__).resolve().parent.parent.parent / "data" / "laws" / SHIPPED_LAWS[name]


def default_law_path() -> Path:
    """The shipped default law, data/laws/default.json."""
    return shipped_law_path("default")
