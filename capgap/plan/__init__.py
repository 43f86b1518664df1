"""Planning the next runs: ``planner.plan_runs`` is the entry; ``scoring`` scores a design under the fit's model,
``search`` chooses the batch (greedy, exchange, a cold start's lookahead) and forecasts the interval after it,
``records`` holds the plan and its file (PLAN.csv).

The names of ``planner`` (the module ``capgap.plan`` was before it became a package) are answered here too.
"""

from capgap.core.faces import forward_to

__getattr__ = forward_to(__name__, "capgap.plan.planner")
