"""Law families of the optimal teacher, one module each, one common face (base.Law); the shipped law files and
their names (``files``). Imports run one way inside the package: base <- families, base <- files <- this face.
"""

from capgap.laws.base import FitOptions, Law, LawFile, TeacherEstimate, load_law, register_law
from capgap.laws.files import SHIPPED_LAWS, shipped_law_path

__all__ = ["SHIPPED_LAWS", "FitOptions", "Law", "LawFile", "TeacherEstimate", "default_law_path", "load_law",
           "register_law", "shipped_law_path"]


def default_law_path():  # noqa: ANN201 (a Path)
    """The law fitted on capgap's shipped CPU runs (data/laws/cpu-demo.json); no longer recommend's default."""
    return shipped_law_path("cpu-demo")
