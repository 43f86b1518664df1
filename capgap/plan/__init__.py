"""Planning the next runs: ``planner.plan_runs`` chooses them, ``scoring`` scores a design under the fit's model.

The names of ``planner`` (the module ``capgap.plan`` was before it became a package) are answered here too.
"""

from capgap.core.faces import forward_to

__getattr__ = forward_to(__name__, "capgap.plan.planner")
