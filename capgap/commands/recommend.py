"""`capgap recommend`: which teacher for this student by each published law, how sure, and what the alternatives cost."""

from __future__ import annotations

import argparse

from capgap.sizes import format_size

TEACHER_COSTS = ("none", "inference", "pretraining", "both")  # capgap.costs.TEACHER_COSTS, without importing it


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("recommend", help="recommend a teacher size (and a real model) for a student")
    parser.add_argument("--student", required=True, metavar="SIZE", help="student size: 70M, 1.3B, 1.3e9, ...")
    parser.add_argument("--law", default="default", metavar="default|zhang2023|busbridge2025|cpu-demo|LAW.json",
                        help="default: both published laws side by side (Zhang et al., Busbridge et al.); a shipped "
                             "law by name ('reference' = zhang2023); or a law file from `capgap fit --out`, "
                             "shown first with the published laws after it")
    parser.add_argument("--init", choices=["pruned", "scratch"], default="pruned",
                        help="how the student is made: pruned from its teacher (MiniMA's recipe; Zhang et al. "
                             "headline) or from scratch (Busbridge et al. headline) (default: pruned)")
    parser.add_argument("--ladder", default="pythia", metavar="pythia|gpt2|none|LADDER.csv",
                        help="real models to snap to: a known ladder or a CSV with name,params columns (default: pythia)")
    parser.add_argument("--size", choices=["total", "nonembed"], default=None, dest="size_measure",
                        help="what --student counts (default: total; with --law FILE, that law's measure); "
                             "each law gets the student converted to its own measure")
    parser.add_argument("--tokens", metavar="N", help="distillation tokens (default: 20 per student parameter)")
    parser.add_argument("--teacher-cost", choices=TEACHER_COSTS, default="inference",
                        help="what strategy FLOPs count of the teacher: none, inference (its forward passes), "
                             "pretraining, or both (default: inference)")
    parser.add_argument("--available-teacher", metavar="SIZE", help="a teacher you already have")
    parser.add_argument("--budget", metavar="FLOPS", help="compute budget in FLOPs, e.g. 1e21")
    parser.add_argument("--assistants", metavar="RUNS.jsonl",
                        help="a run store of `capgap assistant` chains: with --available-teacher, the teacher-assistant "
                             "chain goes through the measured assistant instead of the law's sizes")
    parser.add_argument("--tolerance", type=float, default=0.01, metavar="NATS",
                        help="near-miss band: teachers whose predicted student is within this of the best (default: 0.01)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(func=recommend_command)


def recommend_command(args: argparse.Namespace) -> int:
    from capgap.recommendation import recommend

    rec = recommend(args.student, law=args.law, ladder=args.ladder, size_measure=args.size_measure,
                    tokens=args.tokens, available_teacher=args.available_teacher, budget=args.budget,
                    init=args.init, teacher_cost=args.teacher_cost, tolerance=args.tolerance,
                    assistants=args.assistants)
    print(rec.to_json() if args.json else "\n".join(format_recommendation(rec)))
    return 0


def _teacher_text(answer) -> str:  # noqa: ANN001 (LawAnswer, imported lazily)
    from capgap.ladder_snap import interval_text

    size = format_size(answer.teacher_params)
    if answer.censored == "at_least":
        return f"at least {size} (censored)"
    if answer.censored == "at_most":
        return f"at most {size} (censored)"
    if answer.teacher_params_low is not None or answer.teacher_params_high is not None:
        return f"{size} ({answer.level:.0%} interval {interval_text(answer.teacher_params_low, answer.teacher_params_high)})"
    return f"{size} (no interval)"


def _applies_text(applies) -> str:  # noqa: ANN001
    word = {True: "yes", False: "no", None: "unknown"}[applies.inside]
    return f"{word} ({'; '.join(applies.reasons)})"


def format_answer(answer, role: str, ladder: str) -> list[str]:  # noqa: ANN001
    """One law's block: who, regime, source, whether it applies, the teacher, the near-miss band, the models."""
    law, metric = answer.law, answer.law.metric
    lines = [f"[{role}] {law.label}: {law.source}"]
    lines += [f"  {part}" for part in law.regime]
    lines.append(f"  source: {law.reference}; {law.solidity}")
    lines.append(f"  applies: {_applies_text(answer.applies)}")
    ratio = answer.teacher_params / answer.student_params
    expected = f"; predicted {metric} {answer.expected_metric:.3f}" if answer.expected_metric is not None else ""
    lines.append(f"  optimal teacher: {_teacher_text(answer)}, {ratio:.2f}x the student "
                 f"({format_size(answer.student_params)} {law.size_measure}){expected}")
    band = answer.near_miss
    if band is not None:
        low = format_size(band.low) if band.low is not None else "any smaller"
        high = format_size(band.high) if band.high is not None else "any larger"
        lines.append(f"  near miss: teachers {low} to {high} give a student within {band.tolerance:g} of the best "
                     f"predicted {metric} ({band.best_metric:.3f})")
    elif answer.compute_optimal is None:
        lines.append("  near miss: this law places the teacher but cannot predict student quality")
    optimum = answer.compute_optimal
    if optimum is not None:
        verdict = "yes" if optimum.distillation_pays else "no: train the student alone"
        lines.append(f"  distillation pays: {verdict} (distilled {optimum.distilled_loss:.3f} vs supervised "
                     f"{optimum.supervised_loss:.3f} {metric}); teacher pretrained on {format_size(optimum.teacher_tokens)} "
                     f"tokens, student distilled on {format_size(optimum.distill_tokens)}")
    if answer.nearest:
        lines.append(f"  nearest {ladder} models (preferred first):")
        width = max(len(n.name) for n in answer.nearest)
        for n in answer.nearest:
            where = {True: "inside the interval", False: "outside the interval", None: ""}[n.inside_interval]
            cost = f"  {n.penalty:+.3f} {metric} vs the best" if n.penalty is not None else ""
            lines.append(f"    {'*' if n.name == answer.preferred else ' '} {n.name:<{width}}  {format_size(n.params):>6}  "
                         f"{n.ratio:5.2f}x student  {where}{cost}".rstrip())
        lines.append(f"    {answer.preferred_reason}")
    lines += [f"  note: {note}" for note in answer.notes]
    return lines


def format_recommendation(rec) -> list[str]:  # noqa: ANN001 (Recommendation, imported lazily)
    lines = [f"student: {format_size(rec.student_given)} ({rec.given_measure} parameters), {rec.init}; "
             f"{format_size(rec.tokens)} distillation tokens ({rec.tokens_rule}); teacher cost: {rec.teacher_cost}"]
    lines += [f"warning: {w}" for w in rec.warnings]
    for i, answer in enumerate(rec.by_law):
        lines += format_answer(answer, "headline" if i == 0 else "also", rec.ladder)
    lines.append(f"strategies by the headline law ({rec.flops_rule}):")
    width = max(len(s.name) for s in rec.strategies)
    for s in rec.strategies:
        fits = "" if s.fits_budget is None else ("  fits the budget" if s.fits_budget else "  over the budget")
        expected = f"; expected {rec.law.metric} {s.expected_metric:.4g}" if s.expected_metric is not None else ""
        lines.append(f"  {s.name:<{width}}  {s.runs:>2} run{'s' if s.runs != 1 else ' '}  {s.flops:9.3g} FLOPs{fits}  "
                     f"({s.description}{expected})")
        if s.extra_runs:
            for step in s.steps:
                lines.append(f"      {step.teacher} ({format_size(step.teacher_params)}) → {step.student} "
                             f"({format_size(step.student_params)}): {step.flops:.3g} FLOPs")
    if rec.budget is not None:
        fitting = [s.name for s in rec.strategies if s.fits_budget]
        lines.append(f"budget {rec.budget:.3g} FLOPs; strategies that fit: {', '.join(fitting) or 'none'}")
        if rec.budget_best is not None:
            b = rec.budget_best
            lines.append(f"  best expected student within the budget: teacher {b.teacher} ({format_size(b.teacher_params)}), "
                         f"{format_size(b.tokens)} tokens, {b.flops:.3g} FLOPs, expected {b.metric} {b.expected_metric:.4g}")
    head_notes = set(rec.by_law[0].notes)
    lines += [f"note: {n}" for n in rec.notes if n not in head_notes]
    return lines
