"""`capgap ladder train`: train a teacher ladder from scratch (needs the measure extra: torch, transformers).

Flags, defaults and help are the config's own (capgap.commands.config_flags; capgap.measure.config: plain data,
no torch).
"""

from __future__ import annotations

import argparse
import sys

from capgap.commands.config_flags import RECIPE, add_job_flags, job_from_args
from capgap.measure.config import LadderConfig
from capgap.sizes.units import format_size


def register(subparsers: argparse._SubParsersAction) -> None:
    ladder = subparsers.add_parser("ladder", help="train a teacher ladder from scratch (same data and recipe at every size)")
    verbs = ladder.add_subparsers(dest="ladder_verb", required=True, metavar="ACTION")
    train = verbs.add_parser("train", help="train one checkpoint per size and write DIR/ladder.csv")
    add_job_flags(train, LadderConfig, RECIPE, tokens={"help": "training tokens per rung (e.g. 2M)"})
    train.set_defaults(func=train_command)


def train_command(args: argparse.Namespace) -> int:
    from capgap.measure import quiet_transformers
    from capgap.measure.ladder import inversion_warnings, train_ladder

    quiet_transformers()
    rungs = train_ladder(job_from_args(LadderConfig, args))
    for rung in rungs:
        print(f"{rung.name:<20} {format_size(rung.params):>7} params ({format_size(rung.params_nonembed)} non-embedding), "
              f"{format_size(rung.tokens)} tokens, held-out loss {rung.teacher_loss:.4f}")
    for line in inversion_warnings(rungs):
        print(line, file=sys.stderr)
    print(f"wrote {args.out}/ladder.csv ({len(rungs)} rungs)")
    return 0
