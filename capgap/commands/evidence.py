"""`capgap evidence`: published teacher comparisons for one fixed student, and what each law predicts for them."""

from __future__ import annotations

import argparse


# How each observation was read (the table's quality column), in words.
QUALITY = {"seed": "as read from secondary slides, not the paper's own table", "primary": "from the paper"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evidence", help="published teacher-size comparisons beside each law's prediction")
    parser.add_argument("--tolerance", type=float, default=0.01, metavar="NATS",
                        help="predicted losses closer than this cannot pick a teacher (default: 0.01)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of text")
    parser.set_defaults(func=evidence_command)


def evidence_command(args: argparse.Namespace) -> int:
    import json

    from capgap.recommender.evidence import evidence

    found = evidence(args.tolerance)
    if args.json:
        print(json.dumps([c.model_dump() for c in found], indent=2))
        return 0
    for c in found:
        made = "MoE student, all experts counted, one active per token" if c.student_kind == "moe" else c.student_init
        print(f"{c.study}: {c.student} ({made}), {c.metric}; teachers {', '.join(c.teachers)}; "
              f"best observed: {c.observed_best} [{c.source}; {QUALITY.get(c.quality, c.quality)}]")
        for v in c.verdicts:
            print(f"  {v.law:<14} {v.verdict:<11} {v.why}")
    return 0
