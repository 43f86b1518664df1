"""`capgap recommend`: which teacher for this student by each published law, how sure, and what the alternatives cost."""

from __future__ import annotations

import argparse

TEACHER_COSTS = ("none", "inference", "pretraining", "both")  # capgap.sizes.costs.TEACHER_COSTS, without importing it


def _ladder(value: str) -> str:
    """A shipped ladder's name (``shakespeare-study-ladder``) as its path, as plan --teachers takes it."""
    from capgap.commands.shipped import shipped_path  # at parse time only: recommend starts fast

    return shipped_path(value)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("recommend", help="recommend a teacher size (and a real model) for a student")
    parser.add_argument("--student", required=True, metavar="SIZE",
                        help="student size: 70M, 1.3B, 1.3e9, ... (total parameters unless --size nonembed)")
    parser.add_argument("--law", default="default", metavar="default|zhang2023|busbridge2025|cpu-demo|LAW.json",
                        help="default: both published laws side by side (Zhang et al., Busbridge et al.); a shipped "
                             "law by name answers alone ('reference' = zhang2023); a law file from `capgap fit --out` "
                             "answers first, the published laws after it under --explain")
    parser.add_argument("--init", choices=["pruned", "scratch"], default=None,
                        help="how the student is made: pruned from its teacher (MiniMA's recipe; Zhang et al. "
                             "headline) or from scratch (Busbridge et al. headline) (default: pruned; with a "
                             "shipped --law, the one it was fitted on)")
    parser.add_argument("--student-kind", choices=["dense", "moe"], default="dense",
                        help="dense (default) or moe: a mixture-of-experts student (--student its active size); "
                             "answered by a --law fitted on MoE runs, else the dense answer with a caveat first")
    parser.add_argument("--ladder", default="pythia", type=_ladder, metavar="pythia|gpt2|none|LADDER.csv",
                        help="real models to snap to: a known ladder, a CSV with name,params columns or a shipped "
                             "ladder's name (capgap data) (default: pythia)")
    parser.add_argument("--size", choices=["total", "nonembed"], default=None, dest="size_measure",
                        help="what --student and --available-teacher count (default: total, whatever --law); "
                             "each law gets them converted to its own measure, and says how")
    parser.add_argument("--tokens", metavar="N|Nx", help="distillation tokens, e.g. 26B, or per student parameter, "
                        "e.g. 20x (default: 20x; 1x to 100000x accepted)")
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
    parser.add_argument("--explain", action="store_true",
                        help="after the answer, every law in full: regime, source, whether it applies, strategies")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(func=recommend_command)


def recommend_command(args: argparse.Namespace) -> int:
    from capgap.recommender.text import format_recommendation
    from capgap.recommender.answer import recommend

    rec = recommend(args.student, law=args.law, ladder=args.ladder, size_measure=args.size_measure,
                    tokens=args.tokens, available_teacher=args.available_teacher, budget=args.budget,
                    init=args.init, teacher_cost=args.teacher_cost, tolerance=args.tolerance,
                    assistants=args.assistants, student_kind=args.student_kind)
    print(rec.to_json() if args.json else "\n".join(format_recommendation(rec, explain=args.explain)))
    return 0
