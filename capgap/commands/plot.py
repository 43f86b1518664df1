"""`capgap plot law|runs`: a law against its runs, or the raw run grid."""

from __future__ import annotations

import argparse

from capgap.commands.shipped import shipped_path


def register(subparsers: argparse._SubParsersAction) -> None:
    plot = subparsers.add_parser("plot", help="draw a law against its runs, or the raw run grid")
    kinds = plot.add_subparsers(dest="plot_kind", required=True, metavar="KIND")

    law = kinds.add_parser("law", help="two panels: student metric vs teacher size; optimal teacher vs student")
    law.add_argument("law", metavar="LAW.json", help="a law file from `capgap fit --out`, or a shipped law: 'default', 'reference'")
    law.add_argument("--runs", nargs="+", type=shipped_path, metavar="RUNS",
                     help="run files (.jsonl / .csv) or shipped names to draw as measured points")
    law.add_argument("--all-runs", action="store_true",
                     help="also draw, faded, the runs the law was not fitted on (e.g. scratch students)")
    law.add_argument("--out", required=True, metavar="FIG", help="figure path: .png, .svg or .pdf")
    law.set_defaults(func=law_command)

    runs = kinds.add_parser("runs", help="student metric against teacher/student ratio, coloured by student size")
    runs.add_argument("runs", nargs="+", type=shipped_path, metavar="RUNS", help="run files (.jsonl / .csv) or shipped names")
    runs.add_argument("--metric", help="metric to draw (default: eval_loss, else the most common)")
    runs.add_argument("--out", required=True, metavar="FIG", help="figure path: .png, .svg or .pdf")
    runs.set_defaults(func=runs_command)


def law_command(args: argparse.Namespace) -> int:
    from capgap.plots.figures import plot_law_file

    plot_law_file(args.law, runs=args.runs, path=args.out, all_runs=args.all_runs)
    print(f"wrote {args.out}")
    return 0


def runs_command(args: argparse.Namespace) -> int:
    from capgap.plots.figures import plot_run_files

    plot_run_files(args.runs, metric=args.metric, path=args.out)
    print(f"wrote {args.out}")
    return 0
