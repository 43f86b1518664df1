"""`capgap measure`: distil students from every teacher and append one run record per pair."""

from __future__ import annotations

import argparse
import os
import sys

from capgap.commands.config_flags import DISTILL, add_job_flags, job_from_args
from capgap.core.errors import InputError
from capgap.measure.config import MeasureConfig
from capgap.sizes.units import format_size

# the sweep's own TrainConfig flags: the fused loss, a teacher cache, MoE students
SWEEP_RECIPE = (*DISTILL, "compile", "fast", "teacher_cache", "cache_top_k", "balance_weight")


def register(subparsers: argparse._SubParsersAction) -> None:
    cmd = subparsers.add_parser("measure", help="distil students of each size from each larger teacher; record every run")
    add_job_flags(cmd, MeasureConfig, SWEEP_RECIPE, students={"required": False},  # --plan names them instead
                  tokens={"help": "distillation tokens per run (e.g. 500k)", "required": False})
    cmd.add_argument("--plan", metavar="PLAN.csv", help="run exactly the rows of a `capgap plan --out` file "
                     "(student, teacher, tokens, seed), teachers named by --teachers; replaces --students and --tokens")
    cmd.set_defaults(func=measure_command)


def measure_config(args: argparse.Namespace) -> MeasureConfig:
    """The sweep the flags describe."""
    return job_from_args(MeasureConfig, args, wikitext_tokens=args.eval_tokens)


def measure_command(args: argparse.Namespace) -> int:
    from capgap.measure import quiet_transformers
    from capgap.measure.sweep import measure

    quiet_transformers()
    warn = lambda line: print(line, file=sys.stderr)  # noqa: E731
    if args.plan:
        from capgap.measure.plan_runs import measure_plan

        args.tokens, args.students = args.tokens or 1, args.students or "plan"  # the plan's rows say each run's own
        result = measure_plan(measure_config(args), args.plan, warn=warn)
    else:
        missing = [flag for flag, value in (("--students", args.students), ("--tokens", args.tokens)) if not value]
        if missing:
            raise InputError(f"measure needs {' and '.join(missing)} (or --plan PLAN.csv)")
        result = measure(measure_config(args), warn=warn)
    if os.environ.get("RANK", "0") != "0":  # torchrun: the main process reports for all
        return 0
    for record in result.records:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in record.metrics.items())
        kind = "" if record.student_kind == "dense" else \
            f" moe×{record.experts} ({format_size(record.student_active_params)} active)"
        print(f"{record.run_id}  {record.student_init:<7} {format_size(record.student_params):>6}{kind} <- "
              f"{record.extra['teacher']} ({format_size(record.teacher_params)}): {metrics}")
    scope = f" in shard {args.shard}" if args.shard else ""
    failed = f", {len(result.failed)} failed (recorded as failed)" if result.failed else ""
    before = (f"; {result.failed_before} failed before and skipped (--retry-failed runs them)"
              if result.failed_before else "")
    print(f"{result.planned} pairs{scope}: {result.skipped} already recorded, {result.added} added to "
          f"{args.store}{failed}{before}")
    return 0
