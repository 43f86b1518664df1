"""Recommending a teacher: the answer (``answer.recommend``, Recommendation), its text (``text``), the
strategies beside it (``strategies``: assistants, compute-optimal, the largest teacher at hand), real models near
the answer (``ladder_snap``, ``size_convert``), the near-miss band, the reach of the runs behind a law, and the
published evidence (``evidence``).

Named ``recommender``, not ``recommend``: ``capgap.recommend`` is the function users call.
"""
