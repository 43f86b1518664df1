"""Distillation-step throughput: the plain Hugging Face loop against capgap's fast path, in one process.

    python bench/distill_throughput.py --device cuda            # GPT2 124M<-355M and Pythia 160M<-410M, 16x1024, bf16
    python bench/distill_throughput.py --device cpu --tiny      # tiny shapes, real vocabularies, fp32, on a CPU

A step is: teacher forward (no grad) + student forward/backward + AdamW.
Models have the exact configurations and random weights. Variants:

  plain            HF models, fp32 weights under bf16 autocast, full logits, reference loss
                   (capgap.measure.loss), AdamW (foreach); what a hand-written loop does
  plain+compile    the same with torch.compile on both models
  fast-eager       bf16 teacher weights, fused chunked loss from hidden states
                   (capgap.measure.fused_loss), SDPA attention, fused AdamW, no host sync
  fast             fast-eager with torch.compile of the student's and the teacher's forward
                   and of the loss's per-chunk arithmetic
  fast+cache       fast (fast-eager under --no-compile), but the teacher is replaced by its top-k logits read from a
                   TeacherCache on disk (what students 2..5 of a sweep do)

Printed per variant (from the median step time): tokens/s, achieved TFLOP/s (matmul FLOPs: 6*N_S + 2*N_T + attention,
per token), that rate as a fraction of the matmul rate measured in the same run, and
peak memory (CUDA: device memory; Linux CPU: the process's peak resident set, models included). Then the teacher cost a top-k cache saves in a
5-student sweep. Figures are measured, never estimated.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM

from capgap.measure.fused_loss import HiddenAndHead, fused_distill_loss
from capgap.measure.loss import distill_loss
from capgap.measure.teacher_cache import TeacherCache, teacher_topk
from capgap.sizes.units import count_params

SWEEP_STUDENTS = 5
VARIANTS = ("plain", "plain+compile", "fast-eager", "fast", "fast+cache")
COMPILED = ("plain+compile", "fast", "fast+cache")


def gpt2(layers: int, width: int, heads: int) -> GPT2Config:
    return GPT2Config(n_layer=layers, n_embd=width, n_head=heads, vocab_size=50257, n_positions=1024,
                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)


def pythia(layers: int, width: int, heads: int) -> GPTNeoXConfig:
    # The published pythia-160m / -410m configurations (rotary on 25%, parallel residual, untied head).
    return GPTNeoXConfig(num_hidden_layers=layers, hidden_size=width, num_attention_heads=heads,
                         intermediate_size=4 * width, vocab_size=50304, max_position_embeddings=2048,
                         rotary_pct=0.25, rotary_emb_base=10000, use_parallel_residual=True,
                         hidden_dropout=0.0, attention_dropout=0.0, tie_word_embeddings=False)


# (student, teacher) per pair; the tiny shapes keep the real vocabularies, where the loss's memory lives.
PAIRS = {
    "gpt2 124M <- 355M": (lambda: gpt2(12, 768, 12), lambda: gpt2(24, 1024, 16)),
    "pythia 160M <- 410M": (lambda: pythia(12, 768, 12), lambda: pythia(24, 1024, 16)),
}
TINY_PAIRS = {
    "gpt2 tiny L2-d64 <- L4-d128": (lambda: gpt2(2, 64, 2), lambda: gpt2(4, 128, 4)),
    "pythia tiny L2-d64 <- L4-d128": (lambda: pythia(2, 64, 2), lambda: pythia(4, 128, 4)),
}


def flops_per_token(student: transformers.PretrainedConfig, teacher: transformers.PretrainedConfig, seq: int) -> float:
    """Matmul FLOPs of one distillation step per token: 6*N_S + 2*N_T + attention scores.

    N counts the parameters that take part in matmuls (non-embedding + output
    layer); attention adds 4*L*T*d per token forward (QK^T and AV), x3 for
    the student's forward + backward.
    """
    def matmul_params_and_attention(config: transformers.PretrainedConfig) -> tuple[float, float]:
        counts = count_params(config.to_dict())
        width = config.hidden_size
        layers = config.num_hidden_layers
        return counts.nonembed + config.vocab_size * width, 4.0 * layers * seq * width

    n_s, attn_s = matmul_params_and_attention(student)
    n_t, attn_t = matmul_params_and_attention(teacher)
    return 6 * n_s + 3 * attn_s + 2 * n_t + attn_t


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, dtype: torch.dtype) -> float:
    """Best measured dense matmul FLOP/s of this device at this dtype."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(3):
        sync(device)
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - start) / 10)
    return 2 * n ** 3 / best


@dataclass
class Result:
    variant: str
    tokens_per_s: float
    peak_gib: float | None
    step_s: float


class Step:
    """One distillation step of a variant; ``__call__(step_index)`` runs it."""

    def __init__(self, variant: str, student_cfg, teacher_cfg, device: torch.device, dtype: torch.dtype,
                 batches: list[torch.Tensor], cache: TeacherCache | None, chunk: int, no_compile: bool) -> None:
        self.variant, self.device, self.dtype, self.batches, self.cache, self.chunk = (
            variant, device, dtype, batches, cache, chunk)
        fast = variant.startswith("fast")
        compile_models = variant in COMPILED and not no_compile
        self.compile_chunks = compile_models and fast
        torch.manual_seed(0)
        self.student = _model(student_cfg).to(device)
        self.vocab = min(student_cfg.vocab_size, teacher_cfg.vocab_size)
        self.teacher = None
        if variant != "fast+cache":
            teacher = _model(teacher_cfg).to(device).eval().requires_grad_(False)
            if fast and dtype != torch.float32:
                teacher = teacher.to(dtype)  # bf16 weights: half the teacher's memory traffic
            self.teacher = HiddenAndHead(teacher) if fast else teacher
        self.student_forward = HiddenAndHead(self.student) if fast else self.student
        if compile_models:
            self.student_forward = torch.compile(self.student_forward)
            if self.teacher is not None:
                self.teacher = torch.compile(self.teacher)
        self.optimizer = torch.optim.AdamW(self.student.parameters(), lr=1e-4,
                                           fused=fast and device.type == "cuda")
        self.autocast = (torch.autocast(device.type, dtype=dtype) if dtype != torch.float32
                         else contextlib.nullcontext())

    def __call__(self, index: int) -> None:
        batch = self.batches[index % len(self.batches)]
        inputs, labels = batch[:, :-1], batch[:, 1:]
        with self.autocast:
            if self.variant.startswith("fast"):
                hidden, head = self.student_forward(inputs)
                teacher_kwargs = {}
                if self.cache is not None:
                    teacher_kwargs["teacher_topk"] = self.cache.read(index % len(self.batches), self.device)
                else:
                    with torch.no_grad():
                        t_hidden, t_head = self.teacher(inputs)
                    teacher_kwargs = {"teacher_hidden": t_hidden, "teacher_head": t_head}
                loss = fused_distill_loss(hidden, head, labels, vocab_size=self.vocab,
                                          chunk_positions=self.chunk, compile_chunks=self.compile_chunks,
                                          **teacher_kwargs).total
            else:
                logits = self.student_forward(input_ids=inputs).logits
                with torch.no_grad():
                    teacher_logits = self.teacher(input_ids=inputs).logits
                loss = distill_loss(logits, teacher_logits, labels, vocab_size=self.vocab).total
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def _model(config):
    config._attn_implementation = "sdpa"
    cls = GPT2LMHeadModel if config.model_type == "gpt2" else GPTNeoXForCausalLM
    return cls(config)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif os.path.exists("/proc/self/clear_refs"):
        gc.collect()
        with contextlib.suppress(OSError, AttributeError):  # hand freed heap back, so RSS is what is in use
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:  # Linux: "5" resets the peak RSS (VmHWM)
            f.write("5")


def peak_memory_gib(device: torch.device) -> float | None:
    """Peak device memory (CUDA), or the process's peak resident memory (Linux CPU), since the reset."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 30
    try:
        with open("/proc/self/status") as f:
            line = next(x for x in f if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 2 ** 20
    except (OSError, StopIteration):
        return None


def current_memory_gib(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2 ** 30
    try:
        with open("/proc/self/status") as f:
            return int(next(x for x in f if x.startswith("VmRSS:")).split()[1]) / 2 ** 20
    except (OSError, StopIteration):
        return None


def time_steps(step, warmup: int, steps: int, device: torch.device) -> tuple[float, float | None]:
    """(median seconds per step, peak GiB) after ``warmup`` untimed steps (compilation happens there)."""
    for i in range(warmup):
        step(i)
    sync(device)
    reset_peak_memory(device)
    times = []
    for i in range(warmup, warmup + steps):
        start = time.perf_counter()
        step(i)
        sync(device)  # between steps, not inside one
        times.append(time.perf_counter() - start)
    # The median resists other jobs' bursts on a shared machine.
    return statistics.median(times), peak_memory_gib(device)


def write_cache(root: str, teacher_cfg, device, dtype, batches, k: int, vocab: int, chunk: int) -> tuple[TeacherCache, float]:
    """Run the teacher once over the batches into a TeacherCache; returns it and seconds per batch."""
    torch.manual_seed(0)
    teacher = HiddenAndHead(_model(teacher_cfg).to(device).eval().requires_grad_(False))
    if dtype != torch.float32:
        teacher = teacher.to(dtype)
    writer = TeacherCache.create(root, f"random-{teacher_cfg.model_type}-{teacher_cfg.hidden_size}", "bench",
                                 steps=len(batches), batch_shape=tuple(batches[0][:, :-1].shape), k=k,
                                 vocab_size=vocab)
    sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        for index, batch in enumerate(batches):
            hidden, head = teacher(batch[:, :-1])
            writer.write(index, teacher_topk(hidden, head, k=k, vocab_size=vocab, chunk_positions=chunk))
    cache = writer.finish()
    sync(device)
    seconds = (time.perf_counter() - start) / len(batches)
    del teacher
    return cache, seconds


def run_pair(name: str, student_cfg, teacher_cfg, args, device: torch.device, dtype: torch.dtype,
             rate: float) -> list[str]:
    per_token = flops_per_token(student_cfg, teacher_cfg, args.seq)
    vocab = min(student_cfg.vocab_size, teacher_cfg.vocab_size)
    gen = torch.Generator().manual_seed(0)
    n_batches = args.warmup + args.steps
    batches = [torch.randint(0, vocab, (args.batch, args.seq + 1), generator=gen).to(device)
               for _ in range(n_batches)]
    tokens = args.batch * args.seq
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory() as root:
        cache, teacher_write_s = None, None
        for variant in args.variants:
            if args.no_compile and variant in ("plain+compile", "fast"):
                continue  # fast+cache still runs, eagerly, against fast-eager
            if variant == "fast+cache":
                cache, teacher_write_s = write_cache(root, teacher_cfg, device, dtype, batches, args.k, vocab,
                                                     args.chunk)
            try:
                step = Step(variant, student_cfg, teacher_cfg, device, dtype, batches,
                            cache if variant == "fast+cache" else None, args.chunk, args.no_compile)
                step_s, peak = time_steps(step, args.warmup, args.steps, device)
                results[variant] = Result(variant, tokens / step_s, peak, step_s)
            except torch.OutOfMemoryError:
                results[variant] = Result(variant, float("nan"), float("inf"), float("nan"))
            finally:
                step = None
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    memory = "peak GiB" if device.type == "cuda" else "peak RSS GiB (whole process)"
    lines = [f"### {name}: {format(per_token / 1e9, '.3g')} GFLOP/token, batch {args.batch} x {args.seq}", "",
             f"| variant | tokens/s | step ms | TFLOP/s | of matmul rate | {memory} | vs plain |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    plain = results.get("plain")
    for r in results.values():
        achieved = r.tokens_per_s * per_token
        peak = "OOM" if r.peak_gib == float("inf") else ("n/a" if r.peak_gib is None else f"{r.peak_gib:.2f}")
        speedup = f"{r.tokens_per_s / plain.tokens_per_s:.2f}x" if plain else "-"
        lines.append(f"| {r.variant} | {r.tokens_per_s:,.0f} | {r.step_s * 1e3:.1f} | {achieved / 1e12:.3g} | "
                     f"{achieved / rate:.1%} | {peak} | {speedup} |")
    lines += _sweep_lines(results, teacher_write_s, tokens)
    if args.loss_only:
        lines += [""] + loss_only_lines(student_cfg, teacher_cfg, args, device, dtype)
    return lines


def loss_only_lines(student_cfg, teacher_cfg, args, device: torch.device, dtype: torch.dtype) -> list[str]:
    """The loss alone (forward + backward) on random final hidden states: reference vs fused, time and peak memory."""
    positions = args.batch * args.seq
    vocab = min(student_cfg.vocab_size, teacher_cfg.vocab_size)
    gen = torch.Generator().manual_seed(0)
    s_width, t_width = student_cfg.hidden_size, teacher_cfg.hidden_size
    hidden = torch.randn(positions, s_width, generator=gen).to(device, dtype).requires_grad_()
    head = (torch.randn(student_cfg.vocab_size, s_width, generator=gen) / s_width ** 0.5).to(device).requires_grad_()
    t_hidden = torch.randn(positions, t_width, generator=gen).to(device, dtype)
    t_head = (torch.randn(teacher_cfg.vocab_size, t_width, generator=gen) / t_width ** 0.5).to(device, dtype)
    labels = torch.randint(0, vocab, (positions,), generator=gen).to(device)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()

    def reference() -> None:
        with autocast:
            total = distill_loss(hidden @ head.T, t_hidden @ t_head.T, labels, vocab_size=vocab).total
        total.backward()

    def fused() -> None:
        with autocast:
            total = fused_distill_loss(hidden, head, labels, teacher_hidden=t_hidden, teacher_head=t_head,
                                       vocab_size=vocab, chunk_positions=args.chunk).total
        total.backward()

    lines = [f"Loss alone, {positions} positions x {vocab} vocabulary, forward + backward:"]
    for name, run in (("reference (full logits)", reference), (f"fused (chunks of {args.chunk})", fused)):
        run()  # warm up
        hidden.grad = head.grad = None
        sync(device)
        reset_peak_memory(device)
        before = current_memory_gib(device)
        start = time.perf_counter()
        run()
        sync(device)
        seconds = time.perf_counter() - start
        peak = peak_memory_gib(device)
        hidden.grad = head.grad = None
        extra = "n/a" if peak is None or before is None else f"{peak - before:.2f} GiB"
        lines.append(f"- {name}: {seconds * 1e3:.1f} ms, peak memory above the inputs {extra}")
    return lines


def _sweep_lines(results: dict[str, Result], teacher_write_s: float | None, tokens: int) -> list[str]:
    """Teacher cost a top-k cache saves over a 5-student sweep, from the measured step times."""
    live = results.get("fast") or results.get("fast-eager")
    cached = results.get("fast+cache")
    if live is None or cached is None or teacher_write_s is None:
        return []
    without = SWEEP_STUDENTS * live.step_s
    with_cache = teacher_write_s + SWEEP_STUDENTS * cached.step_s
    # The teacher's marginal cost in one student's step: live step minus cached step.
    teacher_live = SWEEP_STUDENTS * (live.step_s - cached.step_s)
    return ["", f"{SWEEP_STUDENTS}-student sweep, per batch of {tokens} tokens ({live.variant} vs fast+cache): "
            f"teacher cost {teacher_live * 1e3:.1f} ms run live for every student, {teacher_write_s * 1e3:.1f} ms "
            f"run once into the cache (top-k and write included); whole sweep {without * 1e3:.1f} ms -> "
            f"{with_cache * 1e3:.1f} ms ({1 - with_cache / without:+.0%} saved)."]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (real vocabularies) for a CPU")
    parser.add_argument("--batch", type=int, help="sequences per step (default 16; tiny 4)")
    parser.add_argument("--seq", type=int, help="tokens per sequence (default 1024; tiny 128)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 20; tiny 5)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5; tiny 2)")
    parser.add_argument("--dtype", choices=["bf16", "fp32"], help="default bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    parser.add_argument("--pairs", default=None, help="comma list of pair-name prefixes (gpt2, pythia)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    parser.add_argument("--loss-only", action="store_true", help="also time the loss alone, reference vs fused")
    parser.add_argument("--k", type=int, default=64, help="top-k of the teacher cache")
    parser.add_argument("--chunk", type=int, help="positions per chunk of the fused loss (default 1024; tiny 128)")
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; accepted: {', '.join(VARIANTS)}")
    args.batch = args.batch or (4 if args.tiny else 16)
    args.seq = args.seq or (128 if args.tiny else 1024)
    args.steps = args.steps or (5 if args.tiny else 20)
    args.warmup = args.warmup if args.warmup is not None else (2 if args.tiny else 5)
    args.chunk = args.chunk or (128 if args.tiny else 1024)  # tiny batches must still span several chunks
    device = torch.device(args.device)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype or ("bf16" if device.type == "cuda" else "fp32")]
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    rate = matmul_rate(device, dtype)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    print(f"# distill_throughput {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    print(f"device: {card}; python {platform.python_version()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}; dtype {str(dtype).replace('torch.', '')}; "
          f"measured matmul rate {rate / 1e12:.3g} TFLOP/s; {args.warmup} warmup + {args.steps} timed steps; "
          f"loss chunk {args.chunk} positions")
    print()
    pairs = TINY_PAIRS if args.tiny else PAIRS
    wanted = [p.strip() for p in args.pairs.split(",")] if args.pairs else None
    for name, (student, teacher) in pairs.items():
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        print("\n".join(run_pair(name, student(), teacher(), args, device, dtype, rate)))
        print()
        sys.stdout.flush()


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
