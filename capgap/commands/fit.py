"""`capgap fit RUNS...`: fit the law of the optimal teacher and report it (or print its JSON)."""

from __future__ import annotations

import argparse

from capgap.lawfit import LAW_CHOICES


def register(subparsers: argparse._SubParsersAction) -> None:
    fit = subparsers.add_parser("fit", help="fit the law of capacity gap to runs (.jsonl stores, .csv tables)")
    fit.add_argument("runs", nargs="+", metavar="RUNS", help=".jsonl run stores or .csv run tables")
    fit.add_argument("--law", choices=LAW_CHOICES, default="auto",
                     help="law family; auto picks by leave-one-student-size-out cross-validation (default: auto)")
    fit.add_argument("--metric", help="metric to optimise (default: eval_loss)")
    fit.add_argument("--higher-is-better", action="store_const", const=True, default=None,
                     help="the metric rises with quality (needed for metric names capgap does not know)")
    fit.add_argument("--size", choices=("total", "nonembed"), default="total",
                     help="size measure of students and teachers (default: total)")
    fit.add_argument("--family", help="use only runs of this model family")
    fit.add_argument("--init", dest="student_init", metavar="INIT",
                     help="use only runs whose students were initialised so (pruned, scratch)")
    fit.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples over runs (default: 1000)")
    fit.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the bootstrap (default: 0)")
    fit.add_argument("--out", metavar="LAW.json", help="write the law file here")
    fit.add_argument("--json", action="store_true", help="print the law file JSON instead of the report")
    fit.set_defaults(func=fit_command)


def fit_command(args: argparse.Namespace) -> int:
    from capgap.lawfit import fit_law
    from capgap.laws.base import save_law
    from capgap.store import load_runs

    law = fit_law(load_runs(args.runs), law=args.law, metric=args.metric, higher_is_better=args.higher_is_better,
                  size_measure=args.size, family=args.family, bootstrap=args.bootstrap, seed=args.seed,
                  student_init=args.student_init)
    if args.out:
        save_law(law, args.out)
    if args.json:
        print(law.file.model_dump_json(indent=2))
    else:
        print(report(law, args.runs))
        if args.out:
            print(f"wrote {args.out}")
    return 0


def _interval(low: float | None, high: float | None, form=None) -> str:
    from capgap.sizes import format_size

    form = form or format_size
    return f"[{form(low)}, {form(high)}]" if low is not None and high is not None else "(no interval)"


def report(law, paths: list[str]) -> str:
    """The short text report: optima, the law with intervals, goodness of fit, the CV comparison."""
    from capgap.sizes import format_size

    file = law.file
    lines = [f"capgap fit: {file.n_runs} runs from {', '.join(paths)}; {file.metric} ({file.direction} is better), "
             f"{file.size_measure} sizes"]
    if file.optima:
        censored = [o for o in file.optima if o.censored]
        lines.append(f"per-student optima ({len(file.optima)}, {len(censored)} censored):")
        lines.append(f"  {'family':<12} {'init':<8} {'student':>8} {'tokens':>8} {'teachers':>8} {'runs':>5}  optimal teacher")
        for o in file.optima:
            tokens = format_size(o.tokens) if o.tokens else "-"
            if o.censored == "at_least":
                where = f">= {format_size(o.teacher_params)} (best teacher is the largest measured: censored)"
            elif o.censored == "at_most":
                where = f"<= {format_size(o.teacher_params)} (best teacher is the smallest measured: censored)"
            else:
                where = (f"{format_size(o.teacher_params)} {_interval(o.low, o.high)}  "
                         f"T*/S = {o.teacher_params / o.student_params:.2f}")
            lines.append(f"  {o.family:<12} {o.student_init or '-':<8} {format_size(o.student_params):>8} {tokens:>8} "
                         f"{len(o.teachers):>8} {o.n_runs:>5}  {where}")
        if censored:
            from capgap.laws.curve import ladder_advice

            lines.append(f"  censored optima are bounds, not points; to measure them: {'; '.join(ladder_advice(censored))}")
    diagnostics = file.diagnostics
    span = (f"students {format_size(file.student_range[0])}-{format_size(file.student_range[1])}"
            if file.student_range else "")
    lines.append(f"law {file.law}: {diagnostics.get('formula', '')}  (fitted on {span})")
    # Coefficients held fixed (no interval) are left out when others were fitted.
    shown = [name for name in file.coefficients if name in file.intervals] or list(file.coefficients)
    for name in shown:
        low, high = file.intervals.get(name, (None, None))
        interval = _interval(low, high, lambda v: f"{v:.4g}")
        lines.append(f"  {name} = {file.coefficients[name]:.4g}  "
                     + (f"{file.level:.0%} interval {interval}" if low is not None else interval))
    boot = diagnostics.get("bootstrap", {})
    if boot.get("failed"):
        lines.append(f"  ({boot['failed']} of {boot['resamples']} bootstrap resamples kept too few measured optima "
                     "to fit and were left out of the intervals)")
    goodness = diagnostics.get("goodness", {})
    if "n_points" in goodness:
        bounds = (f"; {goodness['censored_respected']} of {goodness['n_censored']} censored bounds respected"
                  if goodness["n_censored"] else "")
        lines.append(f"goodness of fit: RMSE of log T* {goodness['rmse_log']:.3g} over {goodness['n_points']} "
                     f"measured optima{bounds}")
    elif goodness:
        lines.append(f"goodness of fit: RMSE of log {file.metric} {goodness['rmse_log']:.3g}")
    cv = diagnostics.get("cv")
    if cv:
        scores = ", ".join(f"{name} {score:.3g}" for name, score in sorted(cv["scores"].items(), key=lambda kv: kv[1]))
        if cv.get("runner_up") and cv["margin"] >= 0:
            verdict = f"{cv['winner']} won by {cv['margin']:.3g} over {cv['runner_up']}"
        elif cv.get("runner_up"):
            verdict = (f"{cv['winner']} chosen: simpler, and within one standard error of "
                       f"{cv['runner_up']} ({-cv['margin']:.3g} worse)")
        else:
            verdict = f"{cv['winner']} chosen" + (f" ({cv['note']})" if cv.get("note") else "")
        lines.append(f"model choice ({cv['method']} CV, {cv['metric']}): {scores or 'none'}; {verdict}")
        for name, why in cv.get("excluded", {}).items():
            lines.append(f"  {name} not compared: {why}")
    return "\n".join(lines)
