"""`capgap fit RUNS...`: fit the law of the optimal teacher and report it (or print its JSON)."""

from __future__ import annotations

import argparse

from capgap.commands.shipped import shipped_path


def register(subparsers: argparse._SubParsersAction) -> None:
    from capgap.fit.law_fit import law_choices

    fit = subparsers.add_parser("fit", help="fit the law of capacity gap to runs (.jsonl stores, .csv tables)")
    fit.add_argument("runs", nargs="+", type=shipped_path, metavar="RUNS",
                     help=".jsonl run stores or .csv run tables, or shipped names (capgap data)")
    fit.add_argument("--law", choices=law_choices(), default="auto",
                     help="law family; auto picks by leave-one-student-size-out cross-validation (default: auto)")
    fit.add_argument("--metric", help="metric to optimise (default: eval_loss)")
    direction = fit.add_mutually_exclusive_group()
    direction.add_argument("--higher-is-better", dest="higher_is_better", action="store_const", const=True,
                           default=None, help="the metric rises with quality (for metric names capgap does not know)")
    direction.add_argument("--lower-is-better", dest="higher_is_better", action="store_const", const=False,
                           help="the metric falls as quality rises (for metric names capgap does not know)")
    fit.add_argument("--size", choices=("total", "nonembed"), default="total",
                     help="size measure of students and teachers (default: total)")
    fit.add_argument("--family", help="use only runs of this model family")
    fit.add_argument("--init", dest="student_init", metavar="INIT",
                     help="use only runs whose students were initialised so (pruned, scratch)")
    fit.add_argument("--kind", dest="student_kind", choices=("dense", "moe"),
                     help="use only runs of this student kind (dense, or moe: mixture-of-experts students)")
    # --draws counts likelihood draws or, where the sampler collapses, bootstrap refits; --bootstrap is its old name.
    fit.add_argument("--draws", "--bootstrap", dest="draws", type=int, default=1000, metavar="N",
                     help="draws for the intervals: from the likelihood, or bootstrap refits where its sampler "
                          "collapses; 0: no intervals (default: 1000; --bootstrap is the old name)")
    fit.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the draws (default: 0)")
    fit.add_argument("--out", metavar="LAW.json", help="write the law file here (atomically)")
    fit.add_argument("--json", action="store_true", help="print the law file JSON instead of the report")
    fit.set_defaults(func=fit_command)


def fit_command(args: argparse.Namespace) -> int:
    from capgap.fit.law_fit import fit_law
    from capgap.laws.base import save_law
    from capgap.core.output import check_output
    from capgap.runs.store import load_runs

    if args.out:  # refuse before minutes of fitting, not after
        check_output(args.out, what="law file")
    law = fit_law(load_runs(args.runs), law=args.law, metric=args.metric, higher_is_better=args.higher_is_better,
                  size_measure=args.size, family=args.family, bootstrap=args.draws, seed=args.seed,
                  student_init=args.student_init, student_kind=args.student_kind)
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
    from capgap.sizes.units import format_size

    form = form or format_size
    if low is not None and high is not None:
        return f"[{form(low)}, {form(high)}]"
    if low is not None:
        return f"[>= {form(low)}]"
    if high is not None:
        return f"[<= {form(high)}]"
    return "(no interval)"


def report(law, paths: list[str]) -> str:
    """The short text report: warnings first, then the law with intervals, the optima, goodness, the model choice."""
    from capgap.runs.kinds import law_kinds
    from capgap.fit.onestage import far_shapes
    from capgap.sizes.units import format_size

    file = law.file
    diagnostics = file.diagnostics
    # An MoE student is placed by its active size (capgap.runs.kinds), whatever the size measure of the dense ones.
    active = " (MoE students: active sizes)" if "moe" in law_kinds(file) else ""
    lines = [f"capgap fit: {file.n_runs} runs from {', '.join(paths)}; {file.metric} ({file.direction} is better), "
             f"{file.size_measure} sizes{active}"]
    lines += [f"warning: {w}" for w in diagnostics.warnings]
    span = (f"students {format_size(file.student_range[0])}-{format_size(file.student_range[1])}"
            if file.student_range else "")
    lines.append(f"law {file.law}: {diagnostics.formula}  (fitted on {span})")
    # Coefficients held fixed (no interval key at all) are left out when others were fitted.
    shown = [name for name in file.coefficients if name in file.intervals] or list(file.coefficients)
    for name in shown:
        if file.bound is not None:  # a one-sided answer: the coefficient is the bound itself
            relation = "<=" if file.bound == "at_most" else ">="
            lines.append(f"  {name} {relation} {file.coefficients[name]:.4g}  (a one-sided bound, no point estimate)")
            continue
        bounds = file.intervals.get(name)
        interval = _interval(*(bounds or (None, None)), lambda v: f"{v:.4g}")
        lines.append(f"  {name} = {file.coefficients[name]:.4g}  "
                     + (f"{file.level:.0%} interval {interval}" if bounds else interval))
    boot = diagnostics.bootstrap
    if boot is not None and boot.resamples:
        effective, proposals = boot.effective, boot.proposals
        quality = (f"effective sample size {effective:.0f}"
                   + (f" of {proposals} weighted proposals" if proposals else " (over the weighted proposals)")
                   if effective is not None
                   else f"{boot.unconverged} stopped early")
        lines.append(f"  intervals: {boot.resamples} draws by {boot.method}; {boot.failed} failed, {quality}")
    if diagnostics.model:
        left, right = far_shapes(diagnostics.shape)
        shape = (f"far shape s = {left[0]:.3g}, alpha = {left[1]:.3g}" if left == right else
                 f"far shape left of the optimum s = {left[0]:.3g}, alpha = {left[1]:.3g}, right of it "
                 f"s = {right[0]:.3g}, alpha = {right[1]:.3g}")
        lines.append(f"  model: {diagnostics.model}; {shape}")
    if file.optima:
        censored = [o for o in file.optima if o.censored]
        exact = diagnostics.df == 0 and not file.samples
        lines.append(f"per-student optima read off the law ({len(file.optima)}, {len(censored)} beyond their ladder):")
        lines.append(f"  {'family':<12} {'init':<8} {'student':>8} {'tokens':>8} {'teachers':>8} {'runs':>5}  optimal teacher")
        for o in file.optima:
            tokens = format_size(o.tokens) if o.tokens else "-"
            where = f"{format_size(o.teacher_params)} {_interval(o.low, o.high)}  T*/S = {o.teacher_params / o.student_params:.2f}"
            if o.censored == "at_least":
                where += "  (beyond the largest teacher measured: one-sided)"
            elif o.censored == "at_most":
                where += "  (below the smallest teacher measured: one-sided)"
            elif exact and o.low is not None:  # no draws: the range is the runs' own, not an interval
                where += "  (an exact fit: the range is the measured teachers either side of the best)"
            lines.append(f"  {o.family:<12} {o.student_init or '-':<8} {format_size(o.student_params):>8} {tokens:>8} "
                         f"{len(o.teachers):>8} {o.n_runs:>5}  {where}")
        if diagnostics.extend_ladder:
            lines.append(f"  to bracket them: {'; '.join(diagnostics.extend_ladder)}")
    for skipped in diagnostics.skipped_groups:
        lines.append(f"  skipped {skipped}: a group needs 3 or more teacher sizes")
    goodness = diagnostics.goodness
    if goodness is not None and goodness.rmse is not None and goodness.rmse_log is None:
        lines.append(f"goodness of fit: RMSE of {file.metric} {goodness.rmse:.3g} over {goodness.n_runs} runs in "
                     f"{goodness.n_groups} groups ({diagnostics.df} residual degrees of freedom)")
    elif goodness is not None and goodness.rmse_log is not None:  # dsl: log loss first (its rmse: metric units)
        held_out = goodness.held_out_rmse_log
        lines.append(f"goodness of fit: RMSE of log {file.metric} {goodness.rmse_log:.3g}"
                     + (f" in sample, {held_out:.3g} leaving out each student size in turn" if held_out else ""))
    cv = diagnostics.cv
    if cv:
        scores = ", ".join(f"{name} {score:.3g}" for name, score in sorted(cv.scores.items(), key=lambda kv: kv[1]))
        if cv.summary:
            verdict = cv.summary
        elif cv.runner_up and cv.margin is not None and cv.margin >= 0:
            verdict = f"{cv.winner} won by {cv.margin:.3g} over {cv.runner_up}"
        elif cv.runner_up:
            verdict = (f"{cv.winner} chosen: simpler, and within one standard error of "
                       f"{cv.runner_up} ({-(cv.margin or 0):.3g} worse)")
        else:
            verdict = f"{cv.winner} chosen" + (f" ({cv.note})" if cv.note else "")
        lines.append(f"model choice ({cv.method} CV, {cv.metric}): {scores or 'none'}; {verdict}")
        for name, lender in cv.shape_from.items():
            if name in cv.curve_shape_scores:
                lines.append(f"  {name} scored by its own curve; with {lender}'s curve shape it would score "
                             f"{cv.curve_shape_scores[name]:.3g} (for the record, not used)")
        for name, why in cv.excluded.items():
            lines.append(f"  {name} not compared: {why}")
    return "\n".join(lines)
