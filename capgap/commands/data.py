"""`capgap data`: what ships with capgap (runs, laws, ladders, corpora, reference tables), by name, with paths."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="list the shipped runs, laws, ladders, corpora and tables, with paths")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of text")
    parser.set_defaults(func=data_command)


def data_command(args: argparse.Namespace) -> int:
    from capgap.commands.shipped import data_lines, shipped_data

    if args.json:
        import json

        print(json.dumps([item.model_dump(mode="json") for item in shipped_data()], indent=2))
    else:
        print("\n".join(data_lines()))
    return 0
