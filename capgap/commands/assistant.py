"""`capgap assistant`: score candidate teacher assistants in one sandwich run (MiniDisc), distil the student through the best."""

from __future__ import annotations

import argparse
import json
import sys

from capgap.commands.config_flags import DISTILL, add_job_flags, job_from_args
from capgap.measure.config import AssistantConfig
from capgap.sizes.units import format_size


def register(subparsers: argparse._SubParsersAction) -> None:
    cmd = subparsers.add_parser("assistant", help="score candidate assistants pruned from the teacher in one sandwich "
                                "run (MiniDisc's lambda-tradeoff); distil the student through the best; record both runs")
    add_job_flags(cmd, AssistantConfig, DISTILL,
                  tokens={"help": "distillation tokens of the student's run (and of each chain step)"})
    cmd.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    cmd.set_defaults(func=assistant_command)


def assistant_config(args: argparse.Namespace) -> AssistantConfig:
    """The job the flags describe."""
    return job_from_args(AssistantConfig, args, wikitext_tokens=args.eval_tokens)


def assistant_command(args: argparse.Namespace) -> int:
    from capgap.measure import quiet_transformers
    from capgap.measure.assistant import run_assistant

    quiet_transformers()
    progress = None if not args.progress or args.json else (lambda line: print(line, file=sys.stderr))
    result = run_assistant(assistant_config(args), progress=progress)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print("\n".join(format_result(result, args.store)))
    return 0


def format_result(result, store: str) -> list[str]:  # noqa: ANN001 (AssistantResult, imported lazily)
    lines = [f"teacher {result.teacher} ({format_size(result.teacher_params)}, held-out loss "
             f"{result.teacher_loss:.4f}); student {format_size(result.student_target)}; lambda {result.lam:g}, "
             f"k {result.k}; m = exp(teacher_loss - loss), t = m + lambda * sparsity"]
    lines.append(f"  {'candidate':<10} {'sparsity':>8} {'params':>8} {'loss':>8} {'m':>7} {'t':>7}")
    for c in result.candidates:
        mark = "  <- chosen" if c == result.chosen else ""
        lines.append(f"  {c.spec:<10} {c.sparsity:8.3f} {format_size(c.params):>8} {c.eval_loss:8.4f} "
                     f"{c.performance:7.4f} {c.tradeoff:7.4f}{mark}")
    flops = result.flops
    lines.append(f"scoring: {flops['scoring']:.3g} FLOPs (one sandwich run) vs {flops['one_chain_per_candidate']:.3g} "
                 f"for one chain per candidate ({flops['scoring_over_chains']:.2f}x)")
    lines.append(f"assistant {result.chosen.spec} ({format_size(result.chosen.params)}): {result.checkpoint}")
    lines.append(f"student via the assistant: eval_loss {result.student_loss:.4f} "
                 f"(run {result.run_ids['minidisc_student']})")
    if result.rows:
        width = max(len(r.method) for r in result.rows)
        lines.append(f"  {'method':<{width}}  {'student eval_loss':>17}  {'FLOPs / direct':>14}")
        lines += [f"  {r.method:<{width}}  {r.student_loss:17.4f}  {r.relative:14.2f}" for r in result.rows]
    lines.append(f"runs: {result.skipped} already recorded, {len(result.written)} added to {store}")
    return lines
