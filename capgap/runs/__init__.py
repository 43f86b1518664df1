"""Runs: the record of one distillation run, reading and writing run files, and runs grouped by student.

``records`` (RunRecord, metric directions) -> ``reader`` / ``store`` (JSONL and CSV files) -> ``groups`` (the
runs of one student, the unit every fit works on); ``kinds`` (dense or MoE students), ``ladder_quality``
(teachers that rank out of size order) and ``synthetic`` (planted runs for tests and benchmarks).
"""
