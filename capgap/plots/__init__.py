"""Figures: the law against its runs, the runs alone (``figures``) and compute-versus-quality Pareto frontiers
(``pareto`` computes them, ``figures.pareto_figure`` draws them).

The names of ``figures`` (the module ``capgap.plots`` was before it became a package) are answered here too.
"""

from capgap.core.faces import forward_to

__getattr__ = forward_to(__name__, "capgap.plots.figures")
