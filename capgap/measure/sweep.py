"""A measurement sweep: distil students of every target size from every larger teacher.

Each (teacher, target size, init) pair is one run with an id derived from its
whole configuration, the teacher's content fingerprint included (a rung
retrained in place is a new teacher: new runs, a fresh teacher cache); runs
already in the store are skipped, and a record is appended only when its run
has finished, so a sweep killed at any moment and started again loses nothing
and duplicates nothing. ``shard=(i, n)`` runs
every n-th pair (0 <= i < n) so n jobs can split one sweep over one store.
Everything is checked before the first run starts: bad input writes nothing.
The whole job is one plain ``MeasureConfig`` (capgap.measure.config).
"""

from __future__ import annotations

import platform
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from capgap.core.errors import InputError
from capgap.measure.corpus import load_corpus
from capgap.runs.ladder_quality import Teacher as RankedTeacher
from capgap.runs.ladder_quality import inversions
from capgap.measure.config import MeasureConfig
from capgap.measure.evaluate import eval_loss, lambada_acc, read_lambada, wikitext2_ids, wikitext2_ppl
from capgap.measure.ladder import read_ladder
from capgap.measure.config import ROUTER_NOISE
from capgap.measure.moe import check_experts, check_family, moe_counts
from capgap.measure.models import checkpoint_fingerprint, family_of, load_pretrained, param_count
from capgap.measure.students import INITS, make_student, student_config
from capgap.measure.precheck import check_sweep
from capgap.measure.tokenizer import encode, require_same_tokenizer, vocab_fingerprint
from capgap.measure.parallel import close_distributed, init_distributed
from capgap.measure.train import RunFailed, TrainConfig, plan_steps, resolve_device, train
from capgap.core.output import check_output
from capgap.runs.records import FailedRun, RunRecord, run_id_for
from capgap.sizes.units import distill_flops, format_size, parse_size
from capgap.runs.store import RunStore

# Pruning importance: 4 batches of 16 training windows, fixed so that the pruned student does
# not depend on --micro-batch (importance sums |dL/dmask| per batch).
CALIB_BATCHES, CALIB_BATCH_SIZE = 4, 16


@dataclass(frozen=True)
class Teacher:
    """A teacher as the sweep knows it before loading its weights."""

    name: str  # identity in run ids: ladder rung name, hub name or folder name
    source: str  # what from_pretrained loads
    family: str
    params: int
    params_nonembed: int
    pretrain_tokens: int | None = None  # from ladder.csv
    config: Any = field(default=None, compare=False, repr=False)
    fingerprint: str = ""  # SHA-256 of its config and weights: a rung retrained in place is another teacher
    loss: float | None = None  # held-out loss from ladder.csv (the sweep measures its own before the runs)


@dataclass(frozen=True)
class Pair:
    teacher: Teacher
    target: int  # student parameters asked for (total)
    target_spec: str  # as given: '2M' or '0.4'
    init: str
    run_id: str = ""


@dataclass
class SweepResult:
    planned: int  # pairs in this shard
    skipped: int  # already in the store
    added: int  # recorded now
    records: list[RunRecord] = field(default_factory=list)
    failed: list[FailedRun] = field(default_factory=list)  # failed now (recorded as failed in the store)
    failed_before: int = 0  # recorded as failed by an earlier sweep, skipped (retry_failed runs them)


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n; None -> (0, 1)."""
    if not text:
        return 0, 1
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise InputError(f"--shard {text!r} is not i/n; e.g. 0/4 for the first of four jobs") from None
    if count < 1 or not 0 <= index < count:
        raise InputError(f"--shard {text!r} out of range; need 0 <= i < n (e.g. 0/4 ... 3/4)")
    return index, count


def parse_inits(text: str) -> list[str]:
    inits = list(INITS) if text == "both" else [s.strip() for s in text.split(",") if s.strip()]
    bad = [i for i in inits if i not in INITS]
    if bad or not inits:
        raise InputError(f"--student-init {text!r} is not known; accepted: pruned, scratch, both")
    return inits


def parse_targets(text: str) -> list[str]:
    """Target sizes as given: absolute ('2M', '410M') or fractions of the teacher ('0.4')."""
    specs = [s.strip() for s in text.split(",") if s.strip()]
    if not specs:
        raise InputError("--students is empty; give sizes such as 2M,4M or fractions such as 0.4")
    for spec in specs:
        _target_for(spec, 10**12)  # validates the form
    return specs


def _target_for(spec: str, teacher_params: int) -> int:
    try:
        value = float(spec)
    except ValueError:
        return parse_size(spec, what="student size")
    if 0 < value < 1:
        return int(round(value * teacher_params))
    return parse_size(spec, what="student size")


def resolve_teachers(spec: str) -> list[Teacher]:
    """Teachers from a ladder folder or ladder.csv, or a comma list of hub names / checkpoint folders."""
    path = Path(spec)
    if path.suffix.lower() == ".csv" or (path.is_dir() and (path / "ladder.csv").is_file()):
        base = path.parent if path.suffix.lower() == ".csv" else path
        teachers = []
        for rung in read_ladder(path):
            source = str(base / rung.path)
            config = load_pretrained(source, "config")
            counts = param_count(config)
            teachers.append(Teacher(rung.name, source, family_of(config), counts.total, counts.nonembed,
                                    rung.tokens, config, checkpoint_fingerprint(source), rung.teacher_loss))
        return teachers
    teachers = []
    for name in (s.strip() for s in spec.split(",") if s.strip()):
        config = load_pretrained(name, "config")
        counts = param_count(config)
        identity = Path(name).name if Path(name).expanduser().is_dir() else name
        teachers.append(Teacher(identity, name, family_of(config), counts.total, counts.nonembed, None, config,
                                checkpoint_fingerprint(name)))
    if not teachers:
        raise InputError("--teachers is empty; give a ladder folder, its ladder.csv, or names/folders")
    return teachers


def plan_pairs(teachers: list[Teacher], targets: list[str], inits: list[str]) -> list[Pair]:
    """Every (teacher, target, init) with the teacher larger than the target."""
    pairs = []
    for spec in targets:
        fitting = [t for t in teachers if _target_for(spec, t.params) < t.params]
        if not fitting:
            largest = max(teachers, key=lambda t: t.params)
            raise InputError(f"student size {spec} is not smaller than any teacher (largest: {largest.name}, "
                             f"{format_size(largest.params)} = {largest.params} parameters); give a smaller size")
        for teacher in fitting:  # refuse an unprunable size now, not after hours of other runs
            try:
                student_config(teacher.config, _target_for(spec, teacher.params))
            except InputError as exc:
                raise InputError(f"student size {spec} from teacher {teacher.name}: {exc}") from None
        pairs += [Pair(t, _target_for(spec, t.params), spec, init) for t in fitting for init in inits]
    return sorted(pairs, key=lambda p: (p.teacher.params, p.teacher.name, p.target, p.init))


def code_version() -> str:
    """capgap's version and, in a git checkout, its commit."""
    from capgap import __version__

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, text=True,
                                capture_output=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def hardware(device: torch.device) -> str:
    """The accelerator's name, or the CPU model and the threads torch uses."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA)"
    model = platform.processor() or platform.machine()
    try:  # Linux names the CPU model only here; platform gives just the architecture
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), model)
    except OSError:
        pass
    return f"CPU {model}, {torch.get_num_threads()} threads"


def check_store_writable(path: Path) -> None:
    """Refuse a store we could not append to, before any run (nothing is created here)."""
    check_output(path, what="run store", make_folders=True)


@dataclass
class PreparedCorpus:
    """The tokenised corpus and evaluation sets of one tokenizer."""

    tokenizer: Any
    train_ids: torch.Tensor
    heldout_ids: torch.Tensor
    wikitext_ids: torch.Tensor | None  # None: no wikitext2_ppl in this sweep


def ladder_warnings(teachers: list[Teacher]) -> list[str]:
    """One line per teacher of a ladder that is not better than a smaller one (ladder.csv losses)."""
    ranked = [RankedTeacher(t.name, t.params, t.loss) for t in teachers if t.loss is not None]
    return [f"warning: {inv.sentence()}" for inv in inversions(ranked)]


def measure(config: MeasureConfig, *, warn: Callable[[str], None] | None = None,
            only: set[tuple[str, int]] | None = None) -> SweepResult:
    """Run every pending pair of the sweep (this shard's share); append one record per finished pair.

    ``warn`` receives one line per teacher-quality inversion of the ladder before any run.
    ``only``: run just these (teacher name, target size) pairs (capgap.measure.plan_runs); None: all.
    """
    recipe = config.train
    if not 0.0 <= recipe.alpha <= 1.0:
        raise InputError(f"--alpha {recipe.alpha} out of range; accepted: 0 <= alpha <= 1 (weight of CE on the data)")
    if recipe.temperature <= 0:
        raise InputError(f"--temperature {recipe.temperature} must be positive")
    if recipe.teacher_cache and recipe.cache_top_k < 1:
        raise InputError(f"--cache-top-k {recipe.cache_top_k} must be at least 1")
    experts = check_experts(config.student_kind, config.experts)
    if recipe.balance_weight < 0:
        raise InputError(f"--balance-weight {recipe.balance_weight} must be 0 or more (MiniMoE's: 0.01)")
    # Under torchrun every process runs the sweep on its own device; only the main one records.
    context = init_distributed(resolve_device(recipe.device))
    torch_device = context.device
    store_path = Path(config.store)
    check_store_writable(store_path)
    shard_index, shard_count = parse_shard(config.shard)
    inits, targets = parse_inits(config.student_init), parse_targets(config.students)
    lambada_texts = read_lambada(config.lambada) if config.lambada else None
    teacher_list = resolve_teachers(config.teachers)
    if experts is not None:  # every teacher's students must have an MLP to split, before any run
        for teacher in teacher_list:
            check_family(teacher.config.model_type, where=f"teacher {teacher.name}")
    text = load_corpus(config.corpus)

    # One tokenizer per family: the first teacher's. Every student of the family uses it, so
    # their metrics are comparable; a teacher with another tokenizer is refused.
    prepared: dict[str, PreparedCorpus] = {}
    first_teacher: dict[str, str] = {}
    for teacher in teacher_list:
        tok = load_pretrained(teacher.source, "tokenizer")
        if teacher.family not in prepared:
            train_ids = encode(tok, text.train_text)
            plan_steps(recipe, len(train_ids))  # corpus too small: refused before any run
            wikitext = wikitext2_ids(tok, config.wikitext_tokens) if config.wikitext else None
            prepared[teacher.family] = PreparedCorpus(tok, train_ids, encode(tok, text.heldout_text), wikitext)
            first_teacher[teacher.family] = teacher.name
        require_same_tokenizer(tok, prepared[teacher.family].tokenizer, teacher_name=f"teacher {teacher.name}",
                               student_name=f"the {teacher.family} students (tokenizer of "
                                            f"{first_teacher[teacher.family]})")

    fingerprints = {family: vocab_fingerprint(data.tokenizer) for family, data in prepared.items()}
    if only is not None:  # a plan's pairs: only its teachers need to reach its sizes
        teacher_list = [t for t in teacher_list if t.name in {name for name, _ in only}]
    pairs = plan_pairs(teacher_list, targets, inits)
    check_sweep(pairs, {family: len(data.tokenizer) for family, data in prepared.items()}, recipe.seq_len)
    if only is not None:
        pairs = [p for p in pairs if (p.teacher.name, p.target) in only]
    identity = {"corpus": text.name, "tokens": recipe.tokens, "seq_len": recipe.seq_len,
                "batch_tokens": recipe.batch_tokens, "lr": recipe.lr, "alpha": recipe.alpha,
                "temperature": recipe.temperature, "seed": recipe.seed}
    if recipe.teacher_cache:  # KD over the teacher's top-k + rest is another experiment than the exact KD
        identity["teacher_top_k"] = recipe.cache_top_k
    if experts is not None:  # dense runs keep the ids they had before MoE students existed
        identity.update(student_kind="moe", experts=experts, balance_weight=recipe.balance_weight,
                        router_noise=ROUTER_NOISE)
    pairs = [Pair(p.teacher, p.target, p.target_spec, p.init, run_id_for({
        **identity, "teacher": p.teacher.name, "teacher_params": p.teacher.params,
        "teacher_fingerprint": p.teacher.fingerprint, "teacher_pretrain_tokens": p.teacher.pretrain_tokens,
        "tokenizer": fingerprints[p.teacher.family], "family": p.teacher.family,
        "target": p.target, "init": p.init})) for i, p in enumerate(pairs) if i % shard_count == shard_index]
    run_store = RunStore(store_path)
    has_store = store_path.exists() and store_path.stat().st_size
    finished = run_store.run_ids() if has_store else set()
    failed_before = set() if config.retry_failed or not has_store else set(run_store.failed())
    pending = [p for p in pairs if p.run_id not in finished and p.run_id not in failed_before]
    result = SweepResult(planned=len(pairs), skipped=len(pairs) - len(pending), added=0,
                         failed_before=len({p.run_id for p in pairs} & failed_before))
    if warn is not None and context.is_main:
        for line in ladder_warnings(teacher_list):
            warn(line)

    runner = PairRunner(recipe, torch_device, prepared, lambada_texts, config.eval_tokens, config.progress, text.name,
                         experts)
    for number, pair in enumerate(pending, start=1):
        label = f"[{number}/{len(pending)}] {pair.init} {pair.target_spec} <- {pair.teacher.name}"
        try:
            record = runner.run(pair, label)
        except InputError:
            raise
        except (RuntimeError, ValueError, ArithmeticError) as exc:  # this run, not the sweep, went wrong
            failed = failed_run(pair, identity, exc)
            if context.is_main and run_store.append(failed):
                result.failed.append(failed)
                if warn is not None:
                    warn(f"warning: {label} failed ({failed.reason}); recorded as failed, going on")
            continue
        if context.is_main and run_store.append(record):
            result.added += 1
            result.records.append(record)
    close_distributed(context)  # every DDP wrapper went with its train() call (see close_distributed)
    return result


def failed_run(pair: Pair, identity: dict[str, Any], error: BaseException) -> FailedRun:
    """The store's record of a run that could not finish: its reason and its whole configuration."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
    if not isinstance(error, RunFailed):
        reason = f"{error.__class__.__name__}: {reason}"
    return FailedRun(run_id=pair.run_id, reason=reason[:300], config={
        **identity, "teacher": pair.teacher.name, "teacher_params": pair.teacher.params,
        "teacher_fingerprint": pair.teacher.fingerprint, "family": pair.teacher.family, "target": pair.target,
        "target_spec": pair.target_spec, "init": pair.init})


class PairRunner:
    """Runs pairs one by one, keeping the current teacher, its loss and its pruning scores between pairs.

    The public runner of one distillation: the sweep uses it for every (student, teacher) pair, and the
    assistant chain (capgap.measure.assistant) for each of its links.
    """

    def __init__(self, config: TrainConfig, device: torch.device, prepared: dict[str, PreparedCorpus],
                 lambada_texts: list[str] | None, eval_tokens: int, progress: bool,
                 corpus_name: str, experts: int | None = None) -> None:
        self.config, self.device, self.prepared = config, device, prepared
        self.experts = experts  # None: dense students; else experts per MoE layer
        self.lambada_texts, self.eval_tokens = lambada_texts, eval_tokens
        self.progress, self.corpus_name = progress, corpus_name
        self._teacher_name: tuple[str, str] | None = None
        self._teacher: Any = None
        self._teacher_loss = float("nan")
        self._importance: Any = None
        # Facts of the whole sweep, gathered once (a git call, /proc/cpuinfo, library versions).
        self.environment = {"hardware": hardware(device), "code_version": code_version(),
                            "torch": torch.__version__, "transformers": _transformers_version()}

    def _load_teacher(self, teacher: Teacher) -> None:
        if self._teacher_name == (teacher.source, teacher.fingerprint):
            return
        data = self.prepared[teacher.family]
        self._teacher = self._importance = None  # free the previous teacher before loading the next
        self._teacher = load_pretrained(teacher.source, "model").to(self.device).eval()
        self._teacher_loss = eval_loss(self._teacher, data.heldout_ids, seq_len=self.config.seq_len,
                                       max_tokens=self.eval_tokens, vocab_size=len(data.tokenizer))
        self._teacher_name, self._importance = (teacher.source, teacher.fingerprint), None

    def _calibration(self, data: PreparedCorpus) -> list[torch.Tensor]:
        window = self.config.seq_len
        ids = data.train_ids[: CALIB_BATCHES * CALIB_BATCH_SIZE * window].view(-1, window)
        return [b.to(self.device) for b in ids.split(CALIB_BATCH_SIZE)]

    def run(self, pair: Pair, label: str, save_to: Path | None = None) -> RunRecord:
        """Distil one pair; with ``save_to``, the trained student is also saved there as a checkpoint."""
        from capgap.measure import prune

        start = time.perf_counter()
        self._load_teacher(pair.teacher)
        data = self.prepared[pair.teacher.family]
        vocab = min(len(data.tokenizer), self._teacher.config.vocab_size)
        extra: dict[str, Any] = {"teacher": pair.teacher.name, "teacher_source": pair.teacher.source,
                                 "target_params": pair.target, "target_spec": pair.target_spec,
                                 "corpus": self.corpus_name}
        kind = "dense" if self.experts is None else "moe"
        if pair.init == "pruned":
            calibration = self._calibration(data)
            if self._importance is None:
                self._importance = prune.compute_importance(self._teacher, calibration)
            student = make_student(self._teacher, pair.target, "pruned", seed=self.config.seed,
                                   calib_batches=calibration, importance=self._importance, kind=kind,
                                   experts=self.experts)
            student.to(self.device)
            extra["pruned_loss_before"] = eval_loss(student, data.heldout_ids, seq_len=self.config.seq_len,
                                                    max_tokens=self.eval_tokens, vocab_size=vocab)
            extra["prune_sparsity"] = student.prune_report.sparsity
        else:
            student = make_student(self._teacher, pair.target, "scratch", seed=self.config.seed, calib_batches=[],
                                   kind=kind, experts=self.experts)
        counts = active = param_count(student.config)
        if self.experts is not None:  # the config is the dense shape: add the experts and routers
            counts, active = moe_counts(counts, student.config, self.experts)
            extra.update(balance_weight=self.config.balance_weight, router_noise=ROUTER_NOISE,
                         student_active_params_nonembed=active.nonembed)
        extra["flops_student"] = "active"  # 6*N_S*D counts the parameters a token uses (all of a dense student)
        trained = train(student, data.train_ids, replace(self.config, vocab_size=vocab,
                                                         teacher_id=f"{pair.teacher.name}|{pair.teacher.fingerprint}",
                                                         progress=label if self.progress else None), self._teacher)
        metrics = {"eval_loss": eval_loss(student, data.heldout_ids, seq_len=self.config.seq_len,
                                          max_tokens=self.eval_tokens, vocab_size=vocab)}
        if data.wikitext_ids is not None:
            metrics["wikitext2_ppl"] = wikitext2_ppl(student, data.wikitext_ids, seq_len=self.config.seq_len,
                                                     vocab_size=vocab)
            extra["wikitext2_tokens"] = (len(data.wikitext_ids) // self.config.seq_len) * self.config.seq_len
        if self.lambada_texts:
            metrics["lambada_acc"] = lambada_acc(student, data.tokenizer, self.lambada_texts, seq_len=self.config.seq_len)
            extra["lambada_examples"] = len(self.lambada_texts)
        if save_to is not None:  # a teacher for a later run (capgap.measure.assistant's chains)
            student.save_pretrained(save_to)
            data.tokenizer.save_pretrained(save_to)
        extra.update({
            "student_config": {k: v for k, v in student.config.to_dict().items()
                               if k in ("n_layer", "n_embd", "n_head", "n_inner", "num_hidden_layers", "hidden_size",
                                        "num_attention_heads", "intermediate_size", "vocab_size")},
            "seq_len": self.config.seq_len, "batch_tokens": self.config.batch_tokens, "lr": self.config.lr,
            "steps": trained.steps, "train_wall_s": round(trained.wall_s, 3),
            "wall_s": round(time.perf_counter() - start, 3), "tokens_per_s": round(trained.tokens_per_s, 1),
            **self.environment, "teacher_fingerprint": pair.teacher.fingerprint, "eval_tokens": self.eval_tokens,
            "fast": self.config.fused, "teacher_cache": trained.teacher_cache, "world_size": trained.world_size,
        })
        return RunRecord(
            run_id=pair.run_id, family=pair.teacher.family, student_params=counts.total,
            teacher_params=pair.teacher.params, student_params_nonembed=counts.nonembed,
            teacher_params_nonembed=pair.teacher.params_nonembed, tokens=trained.tokens, student_init=pair.init,
            student_kind=kind, experts=self.experts, student_active_params=active.total,
            alpha=self.config.alpha, temperature=self.config.temperature, seed=self.config.seed, metrics=metrics,
            teacher_loss=self._teacher_loss, teacher_tokens=pair.teacher.pretrain_tokens,
            flops=distill_flops(active.total, pair.teacher.params, trained.tokens),
            source="capgap", extra=extra)


def _transformers_version() -> str:
    import transformers

    return transformers.__version__
