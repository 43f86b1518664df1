"""`capgap pareto`: the compute-versus-performance frontier of a model table or a run store."""

from __future__ import annotations

import argparse
import json

from capgap.commands.shipped import shipped_path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pareto", help="Pareto frontier of compute vs performance (model table or runs)")
    parser.add_argument("table", metavar="TABLE", type=shipped_path,
                        help="a CSV model table, or a run store (.jsonl / CSV of runs), or a shipped name (capgap data)")
    parser.add_argument("--compute", metavar="COL",
                        help="compute column (model table default: the one column named *flops*, "
                             "tflops etc. converted to FLOPs; runs: flops, or 6·N_S·D + 2·N_T·D)")
    parser.add_argument("--perf", metavar="COL[,COL...]",
                        help="performance column(s); several mean their unweighted mean "
                             "(model table default: every other numeric column; runs: eval_loss)")
    direction = parser.add_mutually_exclusive_group()
    direction.add_argument("--lower-is-better", dest="lower_is_better", action="store_const", const=True,
                           default=None, help="performance is lower-is-better (default: from the metric's name, "
                                              "e.g. *_loss or *_err lower, else higher)")
    direction.add_argument("--higher-is-better", dest="lower_is_better", action="store_const", const=False,
                           help="performance is higher-is-better (default: from the metric's name)")
    parser.add_argument("--name", metavar="COL", help="model name column (default: name or model, else the first)")
    parser.add_argument("--size", metavar="COL",
                        help="model size column for bubble areas (default: sizes read from names like Qwen-1.8B)")
    parser.add_argument("--out", metavar="FIG", help="write the figure: .png, .svg or .pdf")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(func=pareto_command)


def pareto_command(args: argparse.Namespace) -> int:
    from capgap.plots.pareto import pareto

    if args.out:  # a figure path that cannot be written is refused before the table is read
        from capgap.plots.figures import figure_format

        figure_format(args.out)
    perf = [c.strip() for c in args.perf.split(",") if c.strip()] if args.perf else None
    result = pareto(args.table, compute=args.compute, perf=perf, lower_is_better=args.lower_is_better,
                    name=args.name, size=args.size)
    if args.out:
        from capgap.plots.figures import pareto_figure

        pareto_figure(result, args.out)
    if args.json:
        print(json.dumps(result.to_json_dict(), indent=2))
    else:
        print("\n".join(format_frontier(result)))
        if args.out:
            print(f"wrote {args.out}")
    return 0


def format_frontier(result) -> list[str]:  # noqa: ANN001 (ParetoResult, imported lazily)
    lines = [f"{result.title} ({len(result.frontier)} of {len(result.points)} points on the frontier)",
             f"compute: {result.compute_label}",
             f"performance: {result.performance_label}"]
    width = max(len(name) for name in result.frontier)
    for group, points in result.frontiers().items():
        if group:
            lines.append(f"family {group}:")
        lines.append(f"  {'name':<{width}}  {'compute':>9}  performance")
        lines += [f"  {p.name:<{width}}  {p.compute:9.2e}  {p.performance:#.4g}" for p in points]
    return lines
