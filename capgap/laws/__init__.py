"""Law families of the optimal teacher, one module each, one common face (base.Law)."""

from capgap.laws.base import Law, LawFile, TeacherEstimate, load_law, register_law

__all__ = ["Law", "LawFile", "TeacherEstimate", "load_law", "register_law"]
