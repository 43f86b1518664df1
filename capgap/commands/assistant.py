"""`capgap assistant`: score candidate teacher assistants in one sandwich run (MiniDisc), distil the student through the best."""

from __future__ import annotations

import argparse
import json
import sys

from capgap.commands.ladder import add_training_flags, train_config
from capgap.measure.config import EVAL_TOKENS, AssistantConfig, TrainConfig
from capgap.sizes.units import format_size, parse_size


def register(subparsers: argparse._SubParsersAction) -> None:
    cmd = subparsers.add_parser("assistant", help="score candidate assistants pruned from the teacher in one sandwich "
                                "run (MiniDisc's lambda-tradeoff); distil the student through the best; record both runs")
    cmd.add_argument("--teacher", required=True, help="the teacher: a checkpoint folder or a Hugging Face name")
    cmd.add_argument("--student", required=True, metavar="SIZE", help="the student's size (30k, 1.3B, ...)")
    cmd.add_argument("--candidates", required=True, metavar="LIST",
                     help="candidate assistants, comma-separated: sparsities (0 < p < 1, e.g. 0.3,0.5,0.7) or sizes (60k)")
    cmd.add_argument("--lambda", dest="lam", type=float, default=AssistantConfig.lam,
                     help=f"lambda of t = m + lambda * sparsity (default {AssistantConfig.lam}, MiniDisc's)")
    cmd.add_argument("--k", dest="sampled", type=int, default=AssistantConfig.sampled,
                     help="middle candidates sampled per sandwich step besides the largest and the smallest "
                          f"(default {AssistantConfig.sampled})")
    cmd.add_argument("--sandwich-tokens", type=lambda s: parse_size(s, what="--sandwich-tokens"),
                     help="tokens of the scoring run (default: --tokens)")
    cmd.add_argument("--assistant-tokens", type=lambda s: parse_size(s, what="--assistant-tokens"), default=0,
                     help="distil the chosen assistant further from the teacher for this many tokens (default 0)")
    cmd.add_argument("--compare", action="store_true",
                     help="also run direct distillation and the exhaustive search (one chain per candidate) and "
                          "print the MiniDisc-style table")
    cmd.add_argument("--runs", "--store", dest="store", required=True, metavar="RUNS.jsonl",
                     help="run store to append to (created if missing)")
    cmd.add_argument("--out", metavar="DIR", help="folder for the assistants' checkpoints (default: "
                     "RUNS-assistants beside the store)")
    cmd.add_argument("--alpha", type=float, default=TrainConfig.alpha,
                     help=f"weight of CE on the data; 1-alpha weighs KD (default {TrainConfig.alpha})")
    cmd.add_argument("--temperature", type=float, default=TrainConfig.temperature,
                     help=f"KD temperature tau (default {TrainConfig.temperature:g})")
    cmd.add_argument("--lambada", metavar="PATH", help='LAMBADA jsonl ({"text": ...} per line) for lambada_acc')
    cmd.add_argument("--eval-tokens", type=lambda s: parse_size(s, what="--eval-tokens"), default=EVAL_TOKENS,
                     help=f"held-out tokens scored per model, and for wikitext2_ppl (default {EVAL_TOKENS})")
    cmd.add_argument("--no-wikitext", dest="wikitext", action="store_false", help="skip the WikiText-2 evaluation")
    cmd.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    add_training_flags(cmd, tokens_help="distillation tokens of the student's run (and of each chain step)")
    cmd.set_defaults(func=assistant_command)


def assistant_config(args: argparse.Namespace) -> AssistantConfig:
    """The job the flags describe."""
    return AssistantConfig(
        teacher=args.teacher, student=args.student, candidates=tuple(args.candidates.split(",")), store=args.store,
        train=train_config(args, alpha=args.alpha, temperature=args.temperature), lam=args.lam, sampled=args.sampled,
        sandwich_tokens=args.sandwich_tokens, assistant_tokens=args.assistant_tokens, compare=args.compare,
        out=args.out, corpus=args.corpus, lambada=args.lambada, eval_tokens=args.eval_tokens, wikitext=args.wikitext,
        wikitext_tokens=args.eval_tokens, progress=not args.quiet)


def assistant_command(args: argparse.Namespace) -> int:
    from capgap.measure import quiet_transformers
    from capgap.measure.assistant import run_assistant

    quiet_transformers()
    progress = None if args.quiet or args.json else (lambda line: print(line, file=sys.stderr))
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
