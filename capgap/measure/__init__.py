"""capgap's measurement side: teacher ladders, students, distillation, evaluation, sweeps.

The only part of capgap that imports torch and transformers (install the
``measure`` extra). Entry points: ``ladder.train_ladder`` (teachers from
scratch) and ``sweep.measure`` (students from every teacher, one run record
per pair); ``loss.distill_loss`` is the reference distillation loss.
"""

from __future__ import annotations


def quiet_transformers() -> None:
    """Silence transformers' per-file progress bars and notices so the CLI prints only its own lines."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
