"""Teacher assistants the MiniDisc way (Zhang et al., arXiv 2205.14570).

When the teacher is far larger than the student, an assistant of intermediate
size helps, but the student is sensitive to the assistant's size and a search
costs one whole chain (teacher -> assistant -> student) per candidate. MiniDisc
scores the candidates without distilling any student through them:

Candidates. Each candidate assistant is pruned from the teacher by the sweep's
first-order importance ranking (capgap.measure.prune, one ``compute_importance``
per teacher) at a sparsity p of the sqrt(1 - p) rule; a size is turned into the
p of that rule (``plan_shape``'s bisection). Candidates keep whole heads of the
teacher's head size. The ranking is one order per layer (heads, neurons) and
one over the residual channels, and a candidate keeps the top of each, so the
masks are nested: a smaller candidate keeps a subset of a larger one's heads,
neurons and channels.

Sandwich run. All candidates share one copy of the teacher's weights (the
supernet). A candidate is a real model of its own, smaller shape whose every
weight is gathered, at each forward pass, from the supernet elements that
pruning would copy into it (``Sandwich.logits`` through ``torch.func.functional_call``):
the candidate trained in the sandwich is exactly the model ``Sandwich.extract``
returns, and each candidate's gradient lands on the shared elements. Which
elements those are is read off pruning itself: the teacher's parameters are
filled with their own global indices (float64) and pruned, so every value of
the pruned model names the teacher element it came from. Each optimizer step
distils, from the frozen teacher on the same batch, the largest and the smallest
candidate plus k middle ones drawn uniformly without replacement (a generator
seeded with the run's seed; all of them when fewer than k; the default k = 2 is
the "sandwich rule" of universally slimmable networks, Yu & Huang 2019, that
MiniDisc follows). The step's gradient is the sum of the sampled candidates'
gradients; the teacher's forward pass is shared by them. Loss, optimizer and
schedule are the sweep's (capgap.measure.loss, capgap.measure.train).

Scoring. m is the candidate's performance, higher is better:
m = exp(L_T - L), with L the candidate's held-out cross-entropy after the
sandwich run and L_T the teacher's. exp(-L) is the geometric-mean probability
of the true token, so m is the candidate's per-token probability relative to
the teacher's: 1 at the teacher's quality, below 1 when worse, and only the
excess loss in nats matters (an additive offset of the loss, such as the
data's entropy, cancels). A raw exp(-L) would be far too small next to lambda
times the sparsity for tiny models (exp(-4.5) = 0.011), and -L is not bounded;
like MiniDisc's accuracies, this m sits in [0, 1] near the top, so lambda = 0.2
keeps the paper's meaning: full sparsity is worth 0.2 of relative performance.
The sparsity is measured: s = 1 - N_candidate / N_teacher (total parameters).
t = m + lambda * s; the chosen assistant has the largest t (ties: the larger).

Chain. The chosen candidate is extracted as an ordinary Hugging Face
checkpoint, optionally distilled further from the teacher, then the student is
pruned from it and distilled from it; both runs are recorded, the student's
record with ``extra.assistant_params`` and ``extra.chain``. ``compare`` adds
direct distillation and the exhaustive search (each candidate pruned from the
teacher and distilled alone for the scoring run's plus the further tokens, then
its student): the MiniDisc-style table. Every run id is derived from its
configuration, and a record is appended only after its run (and checkpoint) is
complete, so a killed job resumes without repeating or duplicating runs.

Code: the candidates in capgap.measure.assistant_candidates, the sandwich run and
the scoring in capgap.measure.sandwich, the job and the chain here.

FLOPs (capgap.sizes.units.distill_flops, evaluation not counted): the scoring run costs,
per step of D tokens, 2*N_T*D (one teacher forward) + 6*D*sum(N_c of the sampled
candidates); one chain per candidate costs sum over c of
6*N_c*A + 2*N_T*A + 6*N_S*D + 2*N_c*D.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from capgap.core.errors import InputError
from capgap.measure import prune
from capgap.measure.assistant_candidates import nominal_sparsity, parse_candidates
from capgap.measure.config import AssistantConfig, TrainConfig
from capgap.measure.corpus import load_corpus
from capgap.measure.evaluate import eval_loss, read_lambada, wikitext2_ids, wikitext2_ppl
from capgap.measure.models import checkpoint_fingerprint, family_of, load_pretrained, param_count
from capgap.measure.sandwich import PERFORMANCE, CandidateScore, Sandwich, choose, score_candidates, train_sandwich
from capgap.measure.students import student_config
from capgap.measure.sweep import Pair, PairRunner, PreparedCorpus, Teacher, check_store_writable, resolve_teachers
from capgap.measure.tokenizer import encode, vocab_fingerprint
from capgap.measure.train import plan_steps, resolve_device
from capgap.runs.records import RunRecord, run_id_for
from capgap.sizes.units import distill_flops, format_size, parse_size
from capgap.runs.store import RunStore


# -- the job -------------------------------------------------------------------

@dataclass
class Row:
    """One line of the --compare table."""

    method: str
    student_loss: float
    flops: float
    relative: float  # FLOPs / direct distillation's
    run_ids: list[str]


@dataclass
class AssistantResult:
    teacher: str
    teacher_params: int
    teacher_loss: float
    student_target: int
    lam: float
    k: int
    candidates: list[CandidateScore]
    chosen: CandidateScore
    checkpoint: str  # the chosen assistant's Hugging Face folder
    run_ids: dict[str, Any]  # role -> id (exhaustive: one pair per candidate)
    written: list[str]  # ids appended now
    skipped: int  # runs already in the store
    flops: dict[str, float]
    student_loss: float
    rows: list[Row] = field(default_factory=list)  # with compare

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lambda"] = data.pop("lam")
        data["performance"] = PERFORMANCE
        return data


def _save_atomically(folder: Path, save: Callable[[Path], None]) -> None:
    """Write a checkpoint into ``folder`` through a temporary sibling, so a killed save leaves no half folder."""
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    save(partial)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)


class _Job:
    """The state of one `capgap assistant` job: data, teacher, runners, the store and what it holds."""

    def __init__(self, config: AssistantConfig) -> None:
        self.config = config
        recipe = config.train
        if not (math.isfinite(config.lam) and config.lam >= 0):
            raise InputError(f"--lambda {config.lam} must be a finite number >= 0 (MiniDisc's default: 0.2)")
        if config.sampled < 0:
            raise InputError(f"--k {config.sampled} must be >= 0 (middle candidates sampled per sandwich step)")
        if config.assistant_tokens < 0:
            raise InputError(f"--assistant-tokens {config.assistant_tokens} must be >= 0")
        if not 0.0 <= recipe.alpha <= 1.0:
            raise InputError(f"--alpha {recipe.alpha} out of range; accepted: 0 <= alpha <= 1")
        if recipe.temperature <= 0:
            raise InputError(f"--temperature {recipe.temperature} must be positive")
        self.device = resolve_device(recipe.device)
        self.store_path = Path(config.store)
        check_store_writable(self.store_path)
        self.out = Path(config.out) if config.out else self.store_path.with_name(self.store_path.stem + "-assistants")
        if self.out.exists() and not self.out.is_dir():
            raise InputError("--out is a file; give a folder for the assistants' checkpoints", where=str(self.out))
        self.target = parse_size(config.student, what="--student")
        self.specs = parse_candidates(config.candidates)
        teachers = resolve_teachers(config.teacher)
        if len(teachers) != 1:
            raise InputError(f"--teacher names {len(teachers)} models; give one checkpoint folder or hub name")
        self.teacher = teachers[0]
        lambada = read_lambada(config.lambada) if config.lambada else None
        text = load_corpus(config.corpus)
        tokenizer = load_pretrained(self.teacher.source, "tokenizer")
        train_ids = encode(tokenizer, text.train_text)
        self.sandwich_recipe = replace(recipe, tokens=config.sandwich_tokens or recipe.tokens)
        self.alone_tokens = self.sandwich_recipe.tokens + config.assistant_tokens
        for tokens in {recipe.tokens, self.sandwich_recipe.tokens, self.alone_tokens}:
            plan_steps(replace(recipe, tokens=tokens), len(train_ids))  # corpus too small: refused now
        wikitext = wikitext2_ids(tokenizer, config.wikitext_tokens) if config.wikitext else None
        self.data = PreparedCorpus(tokenizer, train_ids, encode(tokenizer, text.heldout_text), wikitext)
        self.vocab = len(tokenizer)
        self.corpus_name = text.name
        prepared = {self.teacher.family: self.data}

        def runner(tokens: int) -> PairRunner:
            return PairRunner(replace(recipe, tokens=tokens), self.device, prepared, lambada, config.eval_tokens,
                               config.progress, text.name)

        self.student_runner = runner(recipe.tokens)
        self.alone_runner = runner(self.alone_tokens) if config.compare else None
        self.identity = {"method": "capgap-assistant", "corpus": text.name, "seq_len": recipe.seq_len,
                         "batch_tokens": recipe.batch_tokens, "lr": recipe.lr, "alpha": recipe.alpha,
                         "temperature": recipe.temperature, "seed": recipe.seed,
                         "tokenizer": vocab_fingerprint(tokenizer), "family": self.teacher.family}
        self.teacher_identity = {"teacher": self.teacher.name, "teacher_params": self.teacher.params,
                                 "teacher_fingerprint": self.teacher.fingerprint,
                                 "teacher_pretrain_tokens": self.teacher.pretrain_tokens}
        self.store = RunStore(self.store_path)
        has_runs = self.store_path.exists() and self.store_path.stat().st_size
        self.stored = {r.run_id: r for r in self.store.load()} if has_runs else {}
        self.written: list[str] = []
        self.skipped = 0

    def run_id(self, **fields: Any) -> str:
        return run_id_for({**self.identity, **fields})

    def evaluate(self, model: Any) -> float:
        return eval_loss(model, self.data.heldout_ids, seq_len=self.config.train.seq_len,
                         max_tokens=self.config.eval_tokens, vocab_size=self.vocab)

    def record(self, record: RunRecord) -> RunRecord:
        if self.store.append(record):
            self.written.append(record.run_id)
        self.stored[record.run_id] = record
        return record

    def known(self, run_id: str, checkpoint: Path | None = None) -> RunRecord | None:
        """The stored record of ``run_id`` (counted as skipped), None when the run must (re)run."""
        record = self.stored.get(run_id)
        if record is None:
            return None
        if checkpoint is not None and not (checkpoint / "config.json").is_file():
            raise InputError(f"the checkpoint of recorded run {run_id} is missing; restore it or give a fresh --out",
                             where=str(checkpoint))
        self.skipped += 1
        return record


def _distil_pair(job: _Job, runner: PairRunner, teacher: Teacher, target: int, run_id: str, label: str,
                 save_to: Path | None = None, extra: dict[str, Any] | None = None) -> RunRecord:
    """One pruned student distilled from ``teacher`` by the sweep's runner (saved when asked), recorded once."""
    record = job.known(run_id, save_to)
    if record is not None:
        return record
    pair = Pair(teacher, target, str(target), "pruned", run_id)
    if save_to is None:
        made = runner.run(pair, label)
    else:
        holder: dict[str, RunRecord] = {}
        _save_atomically(save_to, lambda folder: holder.setdefault("r", runner.run(pair, label, save_to=folder)))
        made = holder["r"]
    extra = {**(extra or {}), "checkpoint": str(save_to)} if save_to is not None else (extra or {})
    return job.record(made.model_copy(update={"extra": {**made.extra, **extra}}))


def _assistant_teacher(folder: Path, name: str) -> Teacher:
    config = load_pretrained(str(folder), "config")
    counts = param_count(config)
    return Teacher(name, str(folder), family_of(config), counts.total, counts.nonembed, None, config,
                   checkpoint_fingerprint(str(folder)))


def _chain(job: _Job, assistant: dict[str, Any], student: RunRecord | None = None) -> list[dict[str, Any]]:
    t = job.teacher
    chain = [{"role": "teacher", "name": t.name, "params": t.params, "params_nonembed": t.params_nonembed},
             {"role": "assistant", **assistant}]
    if student is not None:
        chain.append({"role": "student", "params": student.student_params,
                      "params_nonembed": student.student_params_nonembed, "run_id": student.run_id})
    return chain


def _minidisc_assistant(job: _Job, progress: Callable[[str], None] | None) -> tuple[RunRecord, Sandwich]:
    """The scoring run, the choice, the extracted (and further distilled) assistant: recorded once."""
    cfg, recipe, runner = job.config, job.config.train, job.student_runner
    runner._load_teacher(job.teacher)
    teacher, teacher_loss = runner._teacher, runner._teacher_loss
    importance = prune.compute_importance(teacher, runner._calibration(job.data))
    specs = [(spec, nominal_sparsity(teacher, spec, value)) for spec, value in job.specs]
    sandwich = Sandwich(teacher, specs, importance)
    _check_student(job, teacher, sandwich)
    run_id = job.run_id(role="minidisc-assistant", **job.teacher_identity,
                        candidates=[c.nominal_sparsity for c in sandwich.candidates], lam=cfg.lam, k=cfg.sampled,
                        sandwich_tokens=job.sandwich_recipe.tokens, assistant_tokens=cfg.assistant_tokens,
                        eval_tokens=cfg.eval_tokens)
    folder = job.out / run_id
    record = job.known(run_id, folder)
    if record is not None:
        return record, sandwich
    start = time.perf_counter()
    vocab = min(job.vocab, teacher.config.vocab_size)
    sandwich_config = replace(job.sandwich_recipe, vocab_size=vocab)
    report = None if progress is None else (
        lambda step, steps, loss: progress(f"sandwich step {step}/{steps}: summed loss {loss:.3f}"))
    run = train_sandwich(sandwich, teacher, job.data.train_ids, sandwich_config, cfg.sampled, report)
    scores = score_candidates(sandwich, job.evaluate, teacher_loss, cfg.lam)
    best = choose(scores)
    assistant = sandwich.extract(best)
    further_flops, further_tokens = 0.0, 0
    if cfg.assistant_tokens:
        from capgap.measure.train import train

        # A fresh seeded data order (seed + 1): the sandwich run used the seed's own.
        further = train(assistant, job.data.train_ids, replace(recipe, tokens=cfg.assistant_tokens, vocab_size=vocab,
                                                                seed=recipe.seed + 1), teacher)
        further_flops = distill_flops(scores[best].params, job.teacher.params, further.tokens)
        further_tokens = further.tokens
    metrics = {"eval_loss": job.evaluate(assistant)}
    if job.data.wikitext_ids is not None:
        metrics["wikitext2_ppl"] = wikitext2_ppl(assistant, job.data.wikitext_ids, seq_len=recipe.seq_len,
                                                 vocab_size=vocab)

    def save(path: Path) -> None:
        assistant.save_pretrained(path)
        job.data.tokenizer.save_pretrained(path)

    _save_atomically(folder, save)
    counts = param_count(assistant.config)
    chosen = asdict(scores[best])
    record = RunRecord(
        run_id=run_id, family=job.teacher.family, student_params=counts.total, teacher_params=job.teacher.params,
        student_params_nonembed=counts.nonembed, teacher_params_nonembed=job.teacher.params_nonembed,
        tokens=run.tokens + further_tokens,
        student_init="sandwich", alpha=recipe.alpha, temperature=recipe.temperature, seed=recipe.seed,
        metrics=metrics, teacher_loss=teacher_loss, teacher_tokens=job.teacher.pretrain_tokens,
        flops=run.flops + further_flops, source="capgap",
        extra={"role": "minidisc-assistant", "teacher": job.teacher.name, "teacher_source": job.teacher.source,
               "teacher_fingerprint": job.teacher.fingerprint, "corpus": job.corpus_name,
               "performance": PERFORMANCE, "lambda": cfg.lam, "k": cfg.sampled,
               "assistant_scores": [asdict(s) for s in scores], "chosen": chosen,
               "sandwich_tokens": run.tokens, "sandwich_steps": run.steps, "scoring_flops": run.flops,
               "sampled_per_candidate": [sum(i in step for step in run.sampled) for i in range(len(scores))],
               "assistant_tokens": cfg.assistant_tokens, "further_flops": further_flops,
               "checkpoint": str(folder), "checkpoint_fingerprint": checkpoint_fingerprint(str(folder)),
               "sandwich_wall_s": round(run.wall_s, 3), "wall_s": round(time.perf_counter() - start, 3),
               "eval_tokens": cfg.eval_tokens, "seq_len": recipe.seq_len, "batch_tokens": recipe.batch_tokens,
               "lr": recipe.lr, **runner.environment})
    return job.record(record), sandwich


def _trained_tokens(recipe: TrainConfig, tokens: int) -> int:
    """Tokens a run of ``tokens`` actually trains on (whole optimizer steps)."""
    seqs = max(1, recipe.batch_tokens // recipe.seq_len)
    return max(1, math.ceil(tokens / (seqs * recipe.seq_len))) * seqs * recipe.seq_len


def _check_student(job: _Job, teacher: Any, sandwich: Sandwich) -> None:
    """Refuse, before any run, a student that some candidate (or, with compare, the teacher) cannot be pruned to."""
    for c in sandwich.candidates:
        if c.params.total <= job.target:
            raise InputError(f"--candidates {c.spec} gives an assistant of {c.params.total} parameters, not larger "
                             f"than the student ({job.target}); give larger assistants or a smaller --student")
        try:
            student_config(c.model.config, job.target)
        except InputError as exc:
            raise InputError(f"--student {job.config.student} from the assistant {c.spec}: {exc}") from None


def _planned_flops(job: _Job, sandwich: Sandwich, record: RunRecord) -> dict[str, float]:
    """Scoring against one chain per candidate, and the chains, from the shapes (no run needed)."""
    recipe = job.config.train
    d, a = _trained_tokens(recipe, recipe.tokens), _trained_tokens(recipe, job.alone_tokens)
    teacher = job.teacher.params

    def student_params(config: Any) -> int:
        return param_count(student_config(config, job.target)).total

    chains = [distill_flops(c.params.total, teacher, a) + distill_flops(student_params(c.model.config), c.params.total, d)
              for c in sandwich.candidates]
    chosen = record.student_params
    assistant_config = load_pretrained(record.extra["checkpoint"], "config")
    minidisc = record.flops + distill_flops(student_params(assistant_config), chosen, d)
    scoring = float(record.extra["scoring_flops"])
    return {"scoring": scoring, "one_chain_per_candidate": sum(chains), "scoring_over_chains": scoring / sum(chains),
            "minidisc_chain": minidisc, "direct": distill_flops(student_params(job.teacher.config), teacher, d),
            "further_assistant": float(record.extra.get("further_flops", 0.0))}


def run_assistant(config: AssistantConfig, *, progress: Callable[[str], None] | None = None) -> AssistantResult:
    """The whole job (module doc): score, choose, extract, distil the student; with ``compare`` the other methods."""
    job = _Job(config)
    assistant_record, sandwich = _minidisc_assistant(job, progress)
    scores = [CandidateScore(**s) for s in assistant_record.extra["assistant_scores"]]
    chosen = CandidateScore(**assistant_record.extra["chosen"])
    folder = Path(assistant_record.extra["checkpoint"])
    assistant_info = {"params": assistant_record.student_params,
                      "params_nonembed": assistant_record.student_params_nonembed,
                      "sparsity": chosen.sparsity, "run_id": assistant_record.run_id, "checkpoint": str(folder),
                      "method": "minidisc"}
    student_id = job.run_id(role="minidisc-student", assistant_run=assistant_record.run_id, target=job.target,
                            tokens=config.train.tokens)
    label = f"student {format_size(job.target)} <- assistant {format_size(chosen.params)}"
    student = _distil_pair(job, job.student_runner, _assistant_teacher(folder, f"assistant-{assistant_record.run_id}"),
                           job.target, student_id, label,
                           extra={"role": "minidisc-student", "assistant_params": assistant_record.student_params,
                                  "assistant_params_nonembed": assistant_record.student_params_nonembed,
                                  "assistant_run": assistant_record.run_id,
                                  "chain_teacher_params": job.teacher.params,
                                  "chain_teacher": job.teacher.name, "chain": _chain(job, assistant_info),
                                  "assistant_scores": assistant_record.extra["assistant_scores"],
                                  "lambda": config.lam, "performance": PERFORMANCE})
    flops = _planned_flops(job, sandwich, assistant_record)
    run_ids: dict[str, Any] = {"minidisc_assistant": assistant_record.run_id, "minidisc_student": student.run_id}
    result = AssistantResult(
        teacher=job.teacher.name, teacher_params=job.teacher.params, teacher_loss=assistant_record.teacher_loss,
        student_target=job.target, lam=config.lam, k=config.sampled, candidates=scores, chosen=chosen,
        checkpoint=str(folder), run_ids=run_ids, written=job.written, skipped=0, flops=flops,
        student_loss=student.metrics["eval_loss"])
    if config.compare:
        result.rows = _compare(job, sandwich, assistant_record, student, run_ids)
    result.skipped = job.skipped
    return result


def _compare(job: _Job, sandwich: Sandwich, assistant: RunRecord, student: RunRecord,
             run_ids: dict[str, Any]) -> list[Row]:
    """Direct distillation and the exhaustive search on the same data; the MiniDisc-style table."""
    cfg = job.config
    direct_id = job.run_id(role="direct", **job.teacher_identity, target=job.target, tokens=cfg.train.tokens)
    direct = _distil_pair(job, job.student_runner, job.teacher, job.target, direct_id,
                          f"direct {format_size(job.target)} <- {job.teacher.name}", extra={"role": "direct"})
    run_ids["direct"] = direct.run_id
    chains = []
    for c in sandwich.candidates:
        alone_id = job.run_id(role="exhaustive-assistant", **job.teacher_identity, candidate=c.nominal_sparsity,
                              tokens=job.alone_tokens)
        folder = job.out / alone_id
        alone = _distil_pair(job, job.alone_runner, job.teacher, c.params.total, alone_id,
                             f"assistant {c.spec} <- {job.teacher.name}", save_to=folder,
                             extra={"role": "exhaustive-assistant", "candidate": c.spec,
                                    "nominal_sparsity": c.nominal_sparsity})
        info = {"params": alone.student_params, "params_nonembed": alone.student_params_nonembed,
                "sparsity": 1 - alone.student_params / job.teacher.params, "run_id": alone.run_id,
                "checkpoint": str(folder), "method": "exhaustive"}
        end_id = job.run_id(role="exhaustive-student", assistant_run=alone.run_id, target=job.target,
                            tokens=cfg.train.tokens)
        end = _distil_pair(job, job.student_runner, _assistant_teacher(folder, f"assistant-{alone.run_id}"),
                           job.target, end_id, f"student {format_size(job.target)} <- assistant {c.spec}",
                           extra={"role": "exhaustive-student", "assistant_params": alone.student_params,
                                  "assistant_params_nonembed": alone.student_params_nonembed,
                                  "assistant_run": alone.run_id, "chain_teacher_params": job.teacher.params,
                                  "chain_teacher": job.teacher.name, "chain": _chain(job, info)})
        chains.append((c, alone, end))
    run_ids["exhaustive"] = [[alone.run_id, end.run_id] for _, alone, end in chains]
    base = direct.flops
    search_flops = sum(alone.flops + end.flops for _, alone, end in chains)
    best = min(chains, key=lambda chain: chain[2].metrics["eval_loss"])
    rows = [Row("direct distillation", direct.metrics["eval_loss"], base, 1.0, [direct.run_id]),
            Row(f"MiniDisc (lambda {cfg.lam:g}: assistant {chosen_text(assistant)})", student.metrics["eval_loss"],
                assistant.flops + student.flops, (assistant.flops + student.flops) / base,
                [assistant.run_id, student.run_id]),
            Row(f"exhaustive search (best of {len(chains)}: assistant {best[0].spec})",
                best[2].metrics["eval_loss"], search_flops, search_flops / base,
                [r for _, alone, end in chains for r in (alone.run_id, end.run_id)])]
    rows += [Row(f"  one assistant {c.spec} ({format_size(alone.student_params)})", end.metrics["eval_loss"],
                 alone.flops + end.flops, (alone.flops + end.flops) / base, [alone.run_id, end.run_id])
             for c, alone, end in chains]
    return rows


def chosen_text(record: RunRecord) -> str:
    chosen = record.extra["chosen"]
    return f"{chosen['spec']}, {format_size(record.student_params)}"
