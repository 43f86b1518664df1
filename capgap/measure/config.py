"""The configs of capgap's jobs as plain data: one training recipe, one ladder job, one sweep job.

Each default is named once, here, with its reason; so is each field's command-line flag (`flag`: its help,
metavar, how it reads), from which capgap.commands.config_flags makes the CLI's flags. This module imports
no torch, so `capgap --help` stays fast.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field
from typing import Any

DEFAULT_TOP_K = 64  # teacher top-k kept by a teacher cache: the mass outside it is small for LMs, and exact as one bin
EVAL_TOKENS = 65536  # held-out (and WikiText-2) tokens scored per model: a cap for speed; records state the count
CORPUS = "shakespeare"  # shipped, public domain, 5 MB: enough for tiny ladders on a CPU
STUDENT_KINDS = ("dense", "moe")  # an MoE student: its MLPs made top-1 experts (capgap.measure.moe)
DEFAULT_EXPERTS = 4  # experts per MoE layer: MiniMoE's default
BALANCE_WEIGHT = 0.01  # weight of the MoE balance loss: MiniMoE's and Switch Transformer's
ROUTER_NOISE = 0.01  # eps of the router's multiplicative training noise U[1-eps, 1+eps]: Switch Transformer's jitter

FLAG = "flag"  # the metadata key of a field's Flag


@dataclass(frozen=True)
class Flag:
    """How a config field reads from the command line. The flag's type, default and dest are the field's own."""

    help: str | None = None  # '{default}' stands for the field's default
    name: str | None = None  # default '--field-name'; a bool field that defaults to True names its off switch
    aliases: tuple[str, ...] = ()
    metavar: str | None = None
    size: bool = False  # read as a size: '500k', '2M'
    choices: tuple[str, ...] | None = None


def flag(default: Any = MISSING, help: str | None = None, **how: Any) -> Any:  # noqa: A002 (argparse's word)
    """A dataclass field that is also a command-line flag (``how``: the rest of its Flag)."""
    return field(default=default, metadata={FLAG: Flag(help, **how)})


RUN_STORE = {"help": "run store to append to (created if missing)", "name": "--runs", "aliases": ("--store",),
             "metavar": "RUNS.jsonl"}  # the store of a sweep's and of an assistant job's records


@dataclass(frozen=True)
class TrainConfig:
    """The recipe of one training run (ladder pretraining or one distillation)."""

    # training tokens to consume (rounded up to whole optimizer steps); each verb's --tokens says which
    tokens: int = flag(size=True)
    # long enough for verse and dialogue, short enough for tiny models on a CPU
    seq_len: int = flag(256, "default {default}")
    batch_tokens: int = flag(16384, "tokens per optimizer step (default {default})", size=True)  # accumulated
    micro_batch: int = flag(16, "sequences per forward pass; the step accumulates gradients up to --batch-tokens "
                                "(default {default})")
    lr: float = flag(1e-3, "default {default}")  # tiny models on small corpora tolerate a large rate
    min_lr_ratio: float = 0.1  # cosine decays to lr * this
    warmup_ratio: float = 0.05
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    alpha: float = flag(0.5, "weight of CE on the data; 1-alpha weighs KD (default {default})")  # MiniMA's 0.5
    temperature: float = flag(1.0, "KD temperature tau (default {default})")  # MiniMA's 1
    vocab_size: int | None = None  # the shared real vocabulary for KD
    seed: int = flag(0)
    device: str = flag("cpu", "cpu (default), cuda or cuda:N")
    compile: bool = flag(False, "torch.compile the student")
    progress: str | None = None  # progress bar label; None hides it
    fast: bool = flag(False, "fused chunked loss from hidden states (no full-vocabulary logits); fused AdamW on CUDA")
    teacher_cache: str | None = flag(None, "share the teacher's top-k logits among a sweep's students (written once, "
                                           "then read; KD over top-k + rest; implies --fast)", metavar="DIR")
    teacher_id: str = "teacher"  # the teacher's identity in the cache key (a sweep passes its fingerprint)
    cache_top_k: int = flag(DEFAULT_TOP_K, "k of --teacher-cache (default {default})")
    balance_weight: float = flag(BALANCE_WEIGHT, "weight of the MoE balance loss (default {default})",
                                 metavar="W")  # no effect on a dense student

    @property
    def fused(self) -> bool:
        """Whether the student trains through the fused loss (a teacher cache needs it too)."""
        return self.fast or self.teacher_cache is not None


@dataclass(frozen=True, kw_only=True)
class Job:
    """What every job names besides its own fields and its recipe: the corpus, the progress bars."""

    corpus: str = flag(CORPUS, "{default} (default), wikitext2, or a text file/folder")
    progress: bool = flag(True, "no progress bars", name="--quiet")


@dataclass(frozen=True)
class LadderConfig(Job):
    """One ladder job: which rungs, where they go, and the recipe every rung trains with."""

    family: str = flag(choices=("gpt2", "pythia"))
    sizes: tuple[str, ...] = flag(help="rungs as L<layers>-d<width>, comma-separated (e.g. L2-d64,L4-d128)")
    out: str = flag(metavar="DIR")  # the ladder folder
    train: TrainConfig  # tokens, batch, lr, seed, device (no teacher: alpha is forced to 1)
    # BPE trained on the corpus: small enough for tiny rungs, large enough for words
    vocab_size: int = flag(8192, "BPE vocabulary trained on the corpus (default {default})")
    tokenizer: str = flag("bpe", "bpe: trained on the corpus (default); gpt2: the shipped GPT-2 BPE",
                          choices=("bpe", "gpt2"))
    eval_tokens: int = flag(EVAL_TOKENS, "held-out tokens scored per rung (default {default})", size=True)


@dataclass(frozen=True, kw_only=True)
class DistillJob(Job):
    """What a sweep and an assistant job share: how each distilled model is scored."""

    lambada: str | None = flag(None, 'LAMBADA jsonl ({"text": ...} per line) for lambada_acc', metavar="PATH")
    eval_tokens: int = flag(EVAL_TOKENS, "held-out tokens scored per model for eval_loss, and as many for "
                                         "wikitext2_ppl (default {default})", size=True)
    # wikitext2_ppl is out of domain for a Shakespeare ladder, and costs a forward pass
    wikitext: bool = flag(True, "skip the WikiText-2 evaluation (no wikitext2_ppl in the records)", name="--no-wikitext")
    wikitext_tokens: int = EVAL_TOKENS


@dataclass(frozen=True)
class MeasureConfig(DistillJob):
    """One sweep: which teachers and students, where the runs go, how each run trains and is scored."""

    teachers: str = flag(help="a ladder folder or its ladder.csv, or comma-separated hub names / checkpoint folders")
    students: str = flag(help="target sizes, absolute (2M,4M) or fractions of the teacher (0.4), comma-separated")
    store: str = flag(**RUN_STORE)
    train: TrainConfig  # the recipe of every run
    # the paper's init; 'scratch' or 'both' add fresh students of the same shape
    student_init: str = flag("pruned", "pruned (default), scratch or both")
    # the students' MLPs made experts; their target size is the active one
    student_kind: str = flag("dense", "dense (default) or moe: every MLP made top-1 experts of the dense width "
                                      "(MiniMoE); --students then names active sizes", metavar="KIND")
    # None: DEFAULT_EXPERTS for moe (dense takes none)
    experts: int | None = flag(None, f"experts per MoE layer, with --student-kind moe (default {DEFAULT_EXPERTS})",
                               metavar="E")
    shard: str | None = flag(None, "run only every n-th pair, starting at i (0 <= i < n)", metavar="i/n")  # None: all
    retry_failed: bool = flag(False, "run again the pairs the store records as failed (default: skip them, and say so)")


@dataclass(frozen=True)
class AssistantConfig(DistillJob):
    """One teacher-assistant job (capgap.measure.assistant): candidates scored in one sandwich run, then the chain."""

    teacher: str = flag(help="the teacher: a checkpoint folder or a Hugging Face name")
    student: str = flag(help="the student's size (30k, 1.3B, ...)", metavar="SIZE")
    candidates: tuple[str, ...] = flag(help="candidate assistants, comma-separated: sparsities (0 < p < 1, "
                                            "e.g. 0.3,0.5,0.7) or sizes (60k)", metavar="LIST")  # as given
    store: str = flag(**RUN_STORE)
    train: TrainConfig  # the recipe of every distillation; train.tokens is the student's run
    # lambda of MiniDisc's tradeoff t = m + lambda * sparsity (the paper's default)
    lam: float = flag(0.2, "lambda of t = m + lambda * sparsity (default {default}, MiniDisc's)", name="--lambda")
    # k middle candidates per sandwich step besides the largest and smallest (US-Nets' n = 2)
    sampled: int = flag(2, "middle candidates sampled per sandwich step besides the largest and the smallest "
                           "(default {default})", name="--k")
    sandwich_tokens: int | None = flag(None, "tokens of the scoring run (default: --tokens)", size=True)
    assistant_tokens: int = flag(0, "distil the chosen assistant further from the teacher for this many tokens "
                                    "(default {default})", size=True)  # 0: as scored
    compare: bool = flag(False, "also run direct distillation and the exhaustive search (one chain per candidate) "
                                "and print the MiniDisc-style table")
    out: str | None = flag(None, "folder for the assistants' checkpoints (default: RUNS-assistants beside the store)",
                           metavar="DIR")
