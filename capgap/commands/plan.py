"""`capgap plan`: the next runs that most shrink the interval of the optimal teacher at the target students."""

from __future__ import annotations

import argparse

from capgap.commands.shipped import shipped_path
from capgap.sizes.units import format_size, parse_size


def _sizes(text: str) -> list[int]:
    return [parse_size(s, what="--student") for s in text.split(",") if s.strip()]


def register(subparsers: argparse._SubParsersAction) -> None:
    cmd = subparsers.add_parser("plan", help="propose the runs that most shrink the interval of T* (for measure --plan)")
    cmd.add_argument("runs", nargs="*", type=shipped_path, metavar="RUNS", help=".jsonl run stores, .csv run tables or shipped names (none: start "
                     "from the published laws as a wide prior)")
    cmd.add_argument("--student", required=True, type=_sizes, metavar="SIZE[,SIZE...]", help="target student size(s)")
    cmd.add_argument("--teachers", required=True, type=shipped_path, metavar="LADDER",
                     help="pythia, gpt2, a ladder CSV (name,params) or a shipped ladder's name")
    cmd.add_argument("--runs-budget", type=int, required=True, metavar="K", help="propose at most K runs")
    cmd.add_argument("--flops-budget", type=float, metavar="C",
                     help="and at most C FLOPs in all (a run costs 6·N_S·D + 2·N_T·D)")
    cmd.add_argument("--tokens", type=lambda s: parse_size(s, what="--tokens"), metavar="N",
                     help="distillation tokens of each run (default: the student's runs', else 20 per parameter)")
    cmd.add_argument("--law", default="ratio", help="law family fitted: ratio (default), linear, power, power-tokens "
                     "or auto (cross-validated, slower)")
    cmd.add_argument("--metric", help="metric to optimise (default: eval_loss)")
    cmd.add_argument("--family", help="plan with only runs of this model family (as capgap fit --family)")
    cmd.add_argument("--init", dest="student_init", metavar="INIT",
                     help="plan with only runs whose students were initialised so (pruned, scratch)")
    cmd.add_argument("--target-width", type=float, metavar="W",
                     help="stop once the 90%% interval is within ±W of the estimate (0.2 for ±20%%)")
    cmd.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and of new runs (default 0)")
    cmd.add_argument("--out", metavar="PLAN.csv", help="write the plan here, for capgap measure --plan")
    cmd.add_argument("--json", action="store_true", help="print the plan as JSON")
    cmd.set_defaults(func=plan_command)


def plan_command(args: argparse.Namespace) -> int:
    from capgap.core.output import check_output
    from capgap.plan.planner import plan_runs
    from capgap.plan.records import write_plan_csv
    from capgap.runs.store import load_runs

    if args.out:  # refuse before the planning, not after
        check_output(args.out, what="plan")
    runs = load_runs(args.runs) if args.runs else []
    plan = plan_runs(runs, args.student, args.teachers, args.runs_budget, flops_budget=args.flops_budget,
                     tokens=args.tokens, law=args.law, target_width=args.target_width, seed=args.seed,
                     metric=args.metric, family=args.family, student_init=args.student_init)
    if args.out:
        write_plan_csv(plan, args.out)
    if args.json:
        print(plan.model_dump_json(indent=2))
        return 0
    print(report(plan))
    if args.out:
        print(f"wrote {args.out}")
    return 0


def _interval(t) -> str:
    if t.low is None and t.high is not None:  # a one-sided answer: the bound, no interval
        return f"at most {format_size(t.high)} (a bound, no interval)"
    if t.high is None and t.low is not None:
        return f"at least {format_size(t.low)} (a bound, no interval)"
    if t.low is None:
        return f"{format_size(t.estimate)} (no interval)"
    width = t.relative_half_width
    return f"{format_size(t.estimate)} [{format_size(t.low)}, {format_size(t.high)}] (±{width:.0%})"


def report(plan) -> str:
    start = {"runs": "the fitted runs", "prior": "the published laws as a wide prior",
             "bound": "the fit's one-sided bound"}[plan.start]
    lines = [f"plan from {start} ({plan.law} law); {plan.method}"]
    lines += [f"warning: fit: {w}" for w in plan.warnings]  # the fit's, first, as `capgap fit` prints them
    lines += [f"note: {n}" for n in plan.notes]
    if plan.runs:
        lines.append(f"{len(plan.runs)} run(s), {plan.flops:.3g} FLOPs:")
        lines.append(f"  {'student':>8} {'teacher':<20} {'params':>8} {'tokens':>8} {'seed':>4}")
        for r in plan.runs:
            lines.append(f"  {format_size(r.student_params):>8} {r.teacher:<20} {format_size(r.teacher_params):>8} "
                         f"{format_size(r.tokens):>8} {r.seed:>4}")
    for b, a in zip(plan.before, plan.after):
        lines.append(f"T* of the {format_size(b.student_params)} student, 90% interval: now {_interval(b)}; "
                     f"expected after the batch {_interval(a)}")
    return "\n".join(lines)
