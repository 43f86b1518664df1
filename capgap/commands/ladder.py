"""`capgap ladder train`: train a teacher ladder from scratch (needs the measure extra: torch, transformers)."""

from __future__ import annotations

import argparse

from capgap.sizes import format_size, parse_size


def register(subparsers: argparse._SubParsersAction) -> None:
    ladder = subparsers.add_parser("ladder", help="train a teacher ladder from scratch (same data and recipe at every size)")
    verbs = ladder.add_subparsers(dest="ladder_verb", required=True, metavar="ACTION")
    train = verbs.add_parser("train", help="train one checkpoint per size and write DIR/ladder.csv")
    train.add_argument("--family", required=True, choices=["gpt2", "pythia"])
    train.add_argument("--sizes", required=True, help="rungs as L<layers>-d<width>, comma-separated (e.g. L2-d64,L4-d128)")
    train.add_argument("--out", required=True, metavar="DIR")
    train.add_argument("--vocab-size", type=int, default=8192, help="BPE vocabulary trained on the corpus (default 8192)")
    train.add_argument("--tokenizer", default="bpe", choices=["bpe", "gpt2"],
                       help="bpe: trained on the corpus (default); gpt2: the shipped GPT-2 BPE")
    add_training_flags(train, tokens_help="training tokens per rung (e.g. 2M)")
    train.set_defaults(func=train_command)


def add_training_flags(parser: argparse.ArgumentParser, *, tokens_help: str) -> None:
    """Flags shared by `ladder train` and `measure`: data, recipe, device."""
    parser.add_argument("--tokens", required=True, type=lambda s: parse_size(s, what="--tokens"), help=tokens_help)
    parser.add_argument("--corpus", default="shakespeare", help="shakespeare (default), wikitext2, or a text file/folder")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-tokens", type=lambda s: parse_size(s, what="--batch-tokens"), default=16384,
                        help="tokens per optimizer step (default 16384)")
    parser.add_argument("--micro-batch", type=int, default=16,
                        help="sequences per forward pass; the step accumulates gradients up to --batch-tokens (default 16)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def train_command(args: argparse.Namespace) -> int:
    from capgap.measure import quiet_transformers
    from capgap.measure.ladder import train_ladder

    quiet_transformers()
    rungs = train_ladder(args.family, args.sizes.split(","), args.tokens, args.out, corpus=args.corpus,
                         vocab_size=args.vocab_size, tokenizer=args.tokenizer, seq_len=args.seq_len,
                         batch_tokens=args.batch_tokens, micro_batch=args.micro_batch, lr=args.lr, device=args.device, seed=args.seed,
                         progress=not args.quiet)
    for rung in rungs:
        print(f"{rung.name:<20} {format_size(rung.params):>7} params ({format_size(rung.params_nonembed)} non-embedding), "
              f"{format_size(rung.tokens)} tokens, held-out loss {rung.teacher_loss:.4f}")
    print(f"wrote {args.out}/ladder.csv ({len(rungs)} rungs)")
    return 0
