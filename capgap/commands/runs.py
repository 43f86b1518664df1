"""`capgap runs validate|show|export`: look at run files."""

from __future__ import annotations

import argparse

from capgap.commands.shipped import shipped_path
from capgap.core.errors import InputError
from capgap.runs.store import RunStore, load_runs, read_runs, records_frame, write_csv_runs


def register(subparsers: argparse._SubParsersAction) -> None:
    runs = subparsers.add_parser("runs", help="validate, show and export run files (.jsonl stores, .csv tables)")
    verbs = runs.add_subparsers(dest="runs_verb", required=True, metavar="ACTION")

    validate = verbs.add_parser("validate", help="check run files; one summary line per valid file")
    validate.add_argument("files", nargs="+", type=shipped_path, metavar="FILE", help="run files or shipped names")
    validate.set_defaults(func=validate_command)

    show = verbs.add_parser("show", help="print a run file as a table")
    show.add_argument("file", type=shipped_path, metavar="FILE", help="a run file or a shipped name")
    show.add_argument("--metric", action="append", help="metric column(s) to show (default: all)")
    show.set_defaults(func=show_command)

    export = verbs.add_parser("export", help="write runs as CSV in the import format")
    export.add_argument("file", type=shipped_path, metavar="FILE", help="a run file or a shipped name")
    export.add_argument("--csv", required=True, metavar="OUT")
    export.set_defaults(func=export_command)

    imp = verbs.add_parser("import", help="append a CSV run table to a .jsonl run store")
    imp.add_argument("csv", metavar="CSV")
    imp.add_argument("--store", required=True, metavar="STORE.jsonl")
    imp.set_defaults(func=import_command)


def summary_line(path: str) -> str:
    from capgap.runs.groups import nominal_sizes

    table = read_runs([path], strict=True)  # a torn line or a repeated run is an error here
    records = table.records
    if not records:
        raise InputError(f"no finished runs ({len(table.failed)} failed)", where=path)
    failed = f" (and {len(table.failed)} failed, skipped by every reader)" if table.failed else ""
    # Students cut to one target from different teachers differ by a few parameters: counted as `fit` groups them.
    students = sorted(set(nominal_sizes([r.size("student") for r in records]).values()))
    teachers = sorted({r.teacher_params for r in records})
    metrics = sorted({m for r in records for m in r.metrics})
    families = sorted({r.family for r in records})
    kinds = sorted({r.student_kind for r in records})
    from capgap.sizes.units import format_size

    kind_text = "" if kinds == ["dense"] else "; student kinds " + ", ".join(
        f"{kind} {sum(r.student_kind == kind for r in records)}" for kind in kinds)

    return (f"{path}: ok, {len(records)} runs{failed}; families {', '.join(families)}; "
            f"{len(students)} student sizes ({format_size(students[0])}-{format_size(students[-1])}), "
            f"{len(teachers)} teacher sizes ({format_size(teachers[0])}-{format_size(teachers[-1])}); "
            f"metrics {', '.join(metrics)}{kind_text}")


def validate_command(args: argparse.Namespace) -> int:
    lines = [summary_line(path) for path in args.files]  # all valid, or the first error
    print("\n".join(lines))
    return 0


def show_command(args: argparse.Namespace) -> int:
    import pandas as pd

    records = load_runs([args.file])
    frame = records_frame(records)
    metrics = args.metric or sorted({m for r in records for m in r.metrics})
    kinds = ["student_kind", "experts", "student_active_params"] if any(r.student_kind != "dense" for r in records) else []
    columns = ["run_id", "family", "student_params", *kinds, "teacher_params", "tokens", "student_init"] + metrics
    frame = frame[[c for c in columns if c in frame.columns]].sort_values(["family", "student_params", "teacher_params"])
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.float_format", "{:.4g}".format):
        print(frame.to_string(index=False))
    return 0


def export_command(args: argparse.Namespace) -> int:
    from capgap.core.output import check_output

    check_output(args.csv, what="CSV")  # before reading the runs
    records = load_runs([args.file])
    write_csv_runs(records, args.csv)
    print(f"wrote {len(records)} runs to {args.csv}")
    return 0


def import_command(args: argparse.Namespace) -> int:
    added = RunStore(args.store).import_csv(args.csv)
    print(f"added {added} new runs to {args.store}")
    return 0
