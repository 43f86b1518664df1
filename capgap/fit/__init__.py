"""Fitting the law to runs: the entry ``law_fit.fit_law``, the one-stage curve model (``onestage``), per-student
optima (``optima``), one-sided answers (``one_sided``), the lack-of-fit checks (``lack_of_fit``) and the shared
numerical pieces (``solver``: robust loss, batched Newton, bootstrap helpers).

The names of ``solver`` (the module ``capgap.fit`` was before it became a package) are answered here too.
"""

from capgap.core.faces import forward_to

__getattr__ = forward_to(__name__, "capgap.fit.solver")
