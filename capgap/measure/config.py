"""The configs of capgap's jobs as plain data: one training recipe, one ladder job, one sweep job.

Each default is named once, here, with its reason; the CLI reads its flag
defaults from these classes (this module imports no torch, so `capgap --help`
stays fast).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TOP_K = 64  # teacher top-k kept by a teacher cache: the mass outside it is small for LMs, and exact as one bin
EVAL_TOKENS = 65536  # held-out (and WikiText-2) tokens scored per model: a cap for speed; records state the count
CORPUS = "shakespeare"  # shipped, public domain, 5 MB: enough for tiny ladders on a CPU
STUDENT_KINDS = ("dense", "moe")  # an MoE student: its MLPs made top-1 experts (capgap.measure.moe)
DEFAULT_EXPERTS = 4  # experts per MoE layer: MiniMoE's default
BALANCE_WEIGHT = 0.01  # weight of the MoE balance loss: MiniMoE's and Switch Transformer's
ROUTER_NOISE = 0.01  # eps of the router's multiplicative training noise U[1-eps, 1+eps]: Switch Transformer's jitter


@dataclass(frozen=True)
class TrainConfig:
    """The recipe of one training run (ladder pretraining or one distillation)."""

    tokens: int  # training tokens to consume (rounded up to whole optimizer steps)
    seq_len: int = 256  # long enough for verse and dialogue, short enough for tiny models on a CPU
    batch_tokens: int = 16384  # tokens per optimizer step (accumulated)
    micro_batch: int = 16  # sequences per forward pass
    lr: float = 1e-3  # tiny models on small corpora tolerate a large rate
    min_lr_ratio: float = 0.1  # cosine decays to lr * this
    warmup_ratio: float = 0.05
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    alpha: float = 0.5  # weight of CE(data); 1 - alpha weighs the KD term (MiniMA's 0.5)
    temperature: float = 1.0  # KD temperature (MiniMA's 1)
    vocab_size: int | None = None  # the shared real vocabulary for KD
    seed: int = 0
    device: str = "cpu"
    compile: bool = False
    progress: str | None = None  # progress bar label; None hides it
    fast: bool = False  # chunked fused loss from hidden states (no full logits), fused AdamW on CUDA
    teacher_cache: str | None = None  # folder of teacher top-k caches shared by a sweep (implies fast)
    teacher_id: str = "teacher"  # the teacher's identity in the cache key (a sweep passes its fingerprint)
    cache_top_k: int = DEFAULT_TOP_K
    balance_weight: float = BALANCE_WEIGHT  # of the MoE balance loss; no effect on a dense student

    @property
    def fused(self) -> bool:
        """Whether the student trains through the fused loss (a teacher cache needs it too)."""
        return self.fast or self.teacher_cache is not None


@dataclass(frozen=True)
class LadderConfig:
    """One ladder job: which rungs, where they go, and the recipe every rung trains with."""

    family: str  # gpt2 or pythia
    sizes: tuple[str, ...]  # rung specs, L<layers>-d<width>
    out: str  # the ladder folder
    train: TrainConfig  # tokens, batch, lr, seed, device (no teacher: alpha is forced to 1)
    corpus: str = CORPUS
    vocab_size: int = 8192  # BPE trained on the corpus: small enough for tiny rungs, large enough for words
    tokenizer: str = "bpe"  # or gpt2: the shipped GPT-2 BPE
    eval_tokens: int = EVAL_TOKENS
    progress: bool = True


@dataclass(frozen=True)
class MeasureConfig:
    """One sweep: which teachers and students, where the runs go, how each run trains and is scored."""

    teachers: str  # a ladder folder or its ladder.csv, or comma-separated hub names / checkpoint folders
    students: str  # target sizes: absolute ('2M') or fractions of each teacher ('0.4'), comma-separated
    store: str  # the run store (.jsonl) to append to
    train: TrainConfig  # the recipe of every run
    student_init: str = "pruned"  # the paper's init; 'scratch' or 'both' add fresh students of the same shape
    student_kind: str = "dense"  # or 'moe': the students' MLPs made experts; their target size is the active one
    experts: int | None = None  # experts per MoE layer; None: DEFAULT_EXPERTS for moe (dense takes none)
    corpus: str = CORPUS
    shard: str | None = None  # 'i/n': every n-th pair from the i-th; None runs them all
    lambada: str | None = None  # LAMBADA jsonl; None skips lambada_acc
    eval_tokens: int = EVAL_TOKENS  # held-out tokens for eval_loss
    wikitext: bool = True  # score wikitext2_ppl (out of domain for a Shakespeare ladder, and costs a forward pass)
    wikitext_tokens: int = EVAL_TOKENS
    progress: bool = True
    retry_failed: bool = False  # run again the pairs the store records as failed (else they are skipped)


@dataclass(frozen=True)
class AssistantConfig:
    """One teacher-assistant job (capgap.measure.assistant): candidates scored in one sandwich run, then the chain."""

    teacher: str  # a checkpoint folder or hub name
    student: str  # the student's size ('30k', '1.3B')
    candidates: tuple[str, ...]  # sparsities (0 < p < 1) or sizes of the candidate assistants, as given
    store: str  # the run store (.jsonl) to append to
    train: TrainConfig  # the recipe of every distillation; train.tokens is the student's run
    lam: float = 0.2  # lambda of MiniDisc's tradeoff t = m + lambda * sparsity (the paper's default)
    sampled: int = 2  # k middle candidates per sandwich step besides the largest and smallest (US-Nets' n = 2)
    sandwich_tokens: int | None = None  # tokens of the scoring run; None: train.tokens
    assistant_tokens: int = 0  # further distillation of the chosen assistant from the teacher (0: as scored)
    compare: bool = False  # also direct distillation and the exhaustive search (one chain per candidate)
    out: str | None = None  # folder for the assistants' checkpoints; None: '<store stem>-assistants' beside it
    corpus: str = CORPUS
    lambada: str | None = None
    eval_tokens: int = EVAL_TOKENS
    wikitext: bool = True
    wikitext_tokens: int = EVAL_TOKENS
    progress: bool = True
