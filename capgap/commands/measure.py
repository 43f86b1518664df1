"""`capgap measure`: distil students from every teacher and append one run record per pair."""

from __future__ import annotations

import argparse
import os
import sys

from capgap.commands.ladder import add_training_flags, train_config
from capgap.core.errors import InputError
from capgap.measure.config import DEFAULT_EXPERTS, DEFAULT_TOP_K, EVAL_TOKENS, MeasureConfig, TrainConfig
from capgap.sizes.units import format_size, parse_size


def register(subparsers: argparse._SubParsersAction) -> None:
    cmd = subparsers.add_parser("measure", help="distil students of each size from each larger teacher; record every run")
    cmd.add_argument("--teachers", required=True,
                     help="a ladder folder or its ladder.csv, or comma-separated hub names / checkpoint folders")
    cmd.add_argument("--students",
                     help="target sizes, absolute (2M,4M) or fractions of the teacher (0.4), comma-separated")
    cmd.add_argument("--plan", metavar="PLAN.csv", help="run exactly the rows of a `capgap plan --out` file "
                     "(student, teacher, tokens, seed), teachers named by --teachers; replaces --students and --tokens")
    cmd.add_argument("--runs", "--store", dest="store", required=True, metavar="RUNS.jsonl",
                     help="run store to append to (created if missing)")
    cmd.add_argument("--student-init", default=MeasureConfig.student_init, help="pruned (default), scratch or both")
    cmd.add_argument("--student-kind", default=MeasureConfig.student_kind, metavar="KIND",
                     help="dense (default) or moe: every MLP made top-1 experts of the dense width (MiniMoE); "
                          "--students then names active sizes")
    cmd.add_argument("--experts", type=int, metavar="E",
                     help=f"experts per MoE layer, with --student-kind moe (default {DEFAULT_EXPERTS})")
    cmd.add_argument("--balance-weight", type=float, default=TrainConfig.balance_weight, metavar="W",
                     help=f"weight of the MoE balance loss (default {TrainConfig.balance_weight:g})")
    cmd.add_argument("--alpha", type=float, default=TrainConfig.alpha,
                     help=f"weight of CE on the data; 1-alpha weighs KD (default {TrainConfig.alpha})")
    cmd.add_argument("--temperature", type=float, default=TrainConfig.temperature,
                     help=f"KD temperature tau (default {TrainConfig.temperature:g})")
    cmd.add_argument("--shard", metavar="i/n", help="run only every n-th pair, starting at i (0 <= i < n)")
    cmd.add_argument("--lambada", metavar="PATH", help='LAMBADA jsonl ({"text": ...} per line) for lambada_acc')
    cmd.add_argument("--eval-tokens", type=lambda s: parse_size(s, what="--eval-tokens"), default=EVAL_TOKENS,
                     help=f"tokens scored for eval_loss (held-out) and for wikitext2_ppl each (default {EVAL_TOKENS})")
    cmd.add_argument("--no-wikitext", dest="wikitext", action="store_false",
                     help="skip the WikiText-2 evaluation (no wikitext2_ppl in the records)")
    cmd.add_argument("--compile", action="store_true", help="torch.compile the student")
    cmd.add_argument("--fast", action="store_true",
                     help="fused chunked loss from hidden states (no full-vocabulary logits); fused AdamW on CUDA")
    cmd.add_argument("--teacher-cache", metavar="DIR",
                     help="share the teacher's top-k logits among a sweep's students (written once, then read; "
                          "KD over top-k + rest; implies --fast)")
    cmd.add_argument("--retry-failed", action="store_true",
                     help="run again the pairs the store records as failed (default: skip them, and say so)")
    cmd.add_argument("--cache-top-k", type=int, default=DEFAULT_TOP_K, help=f"k of --teacher-cache (default {DEFAULT_TOP_K})")
    add_training_flags(cmd, tokens_help="distillation tokens per run (e.g. 500k)", tokens_required=False)
    cmd.set_defaults(func=measure_command)


def measure_config(args: argparse.Namespace) -> MeasureConfig:
    """The sweep the flags describe."""
    recipe = train_config(args, alpha=args.alpha, temperature=args.temperature, compile=args.compile, fast=args.fast,
                          teacher_cache=args.teacher_cache, cache_top_k=args.cache_top_k,
                          balance_weight=args.balance_weight)
    return MeasureConfig(teachers=args.teachers, students=args.students, store=args.store, train=recipe,
                         student_init=args.student_init, student_kind=args.student_kind, experts=args.experts,
                         corpus=args.corpus, shard=args.shard, lambada=args.lambada,
                         eval_tokens=args.eval_tokens, wikitext=args.wikitext, wikitext_tokens=args.eval_tokens,
                         progress=not args.quiet, retry_failed=args.retry_failed)


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
