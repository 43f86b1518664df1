"""`capgap recommend`: which teacher for this student, how sure, and what the alternatives cost."""

from __future__ import annotations

import argparse

from capgap.sizes import format_size


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("recommend", help="recommend a teacher size (and a real model) for a student")
    parser.add_argument("--student", required=True, metavar="SIZE", help="student size: 70M, 1.3B, 1.3e9, ...")
    parser.add_argument("--law", default="default", metavar="default|reference|LAW.json",
                        help="law file from `capgap fit --out`; 'default': the law fitted on capgap's shipped runs; "
                             "'reference': the published reading T* = 2.5·S (default: default)")
    parser.add_argument("--ladder", default="pythia", metavar="pythia|gpt2|none|LADDER.csv",
                        help="real models to snap to: a known ladder or a CSV with name,params columns (default: pythia)")
    parser.add_argument("--size", choices=["total", "nonembed"], default=None, dest="size_measure",
                        help="size measure of --student and the ladder (default: the law's)")
    parser.add_argument("--tokens", metavar="N", help="distillation tokens (default: 20 per student parameter)")
    parser.add_argument("--available-teacher", metavar="SIZE", help="a teacher you already have")
    parser.add_argument("--budget", metavar="FLOPS", help="compute budget in FLOPs, e.g. 1e21")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(func=recommend_command)


def recommend_command(args: argparse.Namespace) -> int:
    from capgap.recommend import recommend

    rec = recommend(args.student, law=args.law, ladder=args.ladder, size_measure=args.size_measure,
                    tokens=args.tokens, available_teacher=args.available_teacher, budget=args.budget)
    print(rec.to_json() if args.json else "\n".join(format_recommendation(rec)))
    return 0


def format_recommendation(rec) -> list[str]:  # noqa: ANN001 (Recommendation, imported lazily)
    from capgap.recommend import interval_text

    law = rec.law
    fitted = (f"fitted on {law.n_runs} runs, students {format_size(law.fitted_range[0])}–{format_size(law.fitted_range[1])}"
              if law.fitted and law.fitted_range else "fitted" if law.fitted else "unfitted reference")
    lines = [f"student: {format_size(rec.student_params)} ({rec.size_measure} parameters); "
             f"{format_size(rec.tokens)} distillation tokens ({rec.tokens_rule})",
             f"law: {law.name} ({law.source}; {fitted}){': ' + law.provenance if law.provenance else ''}"]
    if rec.censored == "at_least":
        teacher = f"at least {format_size(rec.teacher_params)} (censored)"
    elif rec.censored == "at_most":
        teacher = f"at most {format_size(rec.teacher_params)} (censored)"
    elif rec.teacher_params_low is not None or rec.teacher_params_high is not None:
        teacher = (f"{format_size(rec.teacher_params)} ({rec.level:.0%} interval "
                   f"{interval_text(rec.teacher_params_low, rec.teacher_params_high)})")
    else:
        teacher = f"{format_size(rec.teacher_params)} (no interval)"
    lines.append(f"optimal teacher: {teacher}, {rec.teacher_params / rec.student_params:.2f}x the student")
    if rec.nearest:
        lines.append(f"nearest {rec.ladder} models (preferred first):")
        width = max(len(n.name) for n in rec.nearest)
        for n in rec.nearest:
            where = {True: "inside the interval", False: "outside the interval", None: ""}[n.inside_interval]
            lines.append(f"  {'*' if n.name == rec.preferred else ' '} {n.name:<{width}}  {format_size(n.params):>6}  "
                         f"{n.ratio:5.2f}x student  {where}".rstrip())
        lines.append(f"  {rec.preferred_reason}")
    lines.append(f"strategies ({rec.flops_rule}):")
    width = max(len(s.name) for s in rec.strategies)
    for s in rec.strategies:
        fits = "" if s.fits_budget is None else ("  fits the budget" if s.fits_budget else "  over the budget")
        expected = f"; expected {law.metric} {s.expected_metric:.4g}" if s.expected_metric is not None else ""
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
    lines += [f"warning: {w}" for w in rec.warnings]
    lines += [f"note: {n}" for n in rec.notes]
    return lines
