"""`capgap ladder train`: train a teacher ladder from scratch (needs the measure extra: torch, transformers).

Flag defaults are the configs' own (capgap.measure.config: plain data, no torch).
"""

from __future__ import annotations

import argparse
import sys

from capgap.measure.config import CORPUS, EVAL_TOKENS, LadderConfig, TrainConfig
from capgap.sizes.units import format_size, parse_size


def register(subparsers: argparse._SubParsersAction) -> None:
    ladder = subparsers.add_parser("ladder", help="train a teacher ladder from scratch (same data and recipe at every size)")
    verbs = ladder.add_subparsers(dest="ladder_verb", required=True, metavar="ACTION")
    train = verbs.add_parser("train", help="train one checkpoint per size and write DIR/ladder.csv")
    train.add_argument("--family", required=True, choices=["gpt2", "pythia"])
    train.add_argument("--sizes", required=True, help="rungs as L<layers>-d<width>, comma-separated (e.g. L2-d64,L4-d128)")
    train.add_argument("--out", required=True, metavar="DIR")
    train.add_argument("--vocab-size", type=int, default=LadderConfig.vocab_size,
                       help=f"BPE vocabulary trained on the corpus (default {LadderConfig.vocab_size})")
    train.add_argument("--tokenizer", default=LadderConfig.tokenizer, choices=["bpe", "gpt2"],
                       help="bpe: trained on the corpus (default); gpt2: the shipped GPT-2 BPE")
    train.add_argument("--eval-tokens", type=lambda s: parse_size(s, what="--eval-tokens"), default=EVAL_TOKENS,
                       help=f"held-out tokens scored per rung (default {EVAL_TOKENS})")
    add_training_flags(train, tokens_help="training tokens per rung (e.g. 2M)")
    train.set_defaults(func=train_command)


def add_training_flags(parser: argparse.ArgumentParser, *, tokens_help: str, tokens_required: bool = True) -> None:
    """Flags shared by `ladder train` and `measure`: data, recipe, device."""
    parser.add_argument("--tokens", required=tokens_required, type=lambda s: parse_size(s, what="--tokens"), help=tokens_help)
    parser.add_argument("--corpus", default=CORPUS,
                        help=f"{CORPUS} (default), wikitext2, or a text file/folder")
    parser.add_argument("--seq-len", type=int, default=TrainConfig.seq_len, help=f"default {TrainConfig.seq_len}")
    parser.add_argument("--batch-tokens", type=lambda s: parse_size(s, what="--batch-tokens"), default=TrainConfig.batch_tokens,
                        help=f"tokens per optimizer step (default {TrainConfig.batch_tokens})")
    parser.add_argument("--micro-batch", type=int, default=TrainConfig.micro_batch,
                        help="sequences per forward pass; the step accumulates gradients up to --batch-tokens "
                             f"(default {TrainConfig.micro_batch})")
    parser.add_argument("--lr", type=float, default=TrainConfig.lr, help=f"default {TrainConfig.lr}")
    parser.add_argument("--device", default=TrainConfig.device, help="cpu (default), cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def train_config(args: argparse.Namespace, **more) -> TrainConfig:
    """The TrainConfig the shared flags describe (plus ``more`` fields)."""
    return TrainConfig(tokens=args.tokens, seq_len=args.seq_len, batch_tokens=args.batch_tokens,
                       micro_batch=args.micro_batch, lr=args.lr, device=args.device, seed=args.seed, **more)


def train_command(args: argparse.Namespace) -> int:
    from capgap.measure import quiet_transformers
    from capgap.measure.ladder import inversion_warnings, train_ladder

    quiet_transformers()
    rungs = train_ladder(LadderConfig(family=args.family, sizes=tuple(args.sizes.split(",")), out=args.out,
                                      train=train_config(args), corpus=args.corpus, vocab_size=args.vocab_size,
                                      tokenizer=args.tokenizer, eval_tokens=args.eval_tokens,
                                      progress=not args.quiet))
    for rung in rungs:
        print(f"{rung.name:<20} {format_size(rung.params):>7} params ({format_size(rung.params_nonembed)} non-embedding), "
              f"{format_size(rung.tokens)} tokens, held-out loss {rung.teacher_loss:.4f}")
    for line in inversion_warnings(rungs):
        print(line, file=sys.stderr)
    print(f"wrote {args.out}/ladder.csv ({len(rungs)} rungs)")
    return 0
