"""A teacher's top-k logits, written once per teacher and data order, read by every student.

Every student of a sweep that shares a teacher and a data order sees the same
teacher logits at every step, so the teacher's forward pass need only run once.
Full logits are too large to keep (50k values per token); the top k (default
64) are kept with the log-normaliser logsumexp(t / tau) over the full real
vocabulary, so the probability mass outside the top k is known exactly and the
KD term can be taken over k + 1 bins (the top k and one "rest" bin).

Layout: ``ROOT/<key>/`` holds ``meta.json`` and three ``.npy`` arrays
(values, indices, logsumexp) indexed by step. The key hashes the teacher's
identity, the data order's identity, k, the vocabulary and the temperature.
A cache is written into a temporary folder and renamed when complete, so a
reader never sees half a cache; meta.json records each array's size and
SHA-256, and a cache whose files do not match (cut short, corrupted) is
removed and rebuilt, never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from capgap.measure.config import DEFAULT_TOP_K

# int16 is numpy's only 2-byte carrier for bf16; values are bit-cast, not converted.
_VALUE_DTYPES = {"float32": (np.float32, torch.float32), "bfloat16": (np.int16, torch.bfloat16)}


class TeacherTopK(NamedTuple):
    """The teacher's k most likely tokens per position and its log-normaliser."""

    values: torch.Tensor  # [..., k] teacher logits (before the temperature), descending
    indices: torch.Tensor  # [..., k] token ids
    logsumexp: torch.Tensor  # [...] log sum_v exp(t_v / temperature) over the real vocabulary
    temperature: float = 1.0


@torch.no_grad()
def teacher_topk(teacher_hidden: torch.Tensor, teacher_head: torch.Tensor, *, k: int = DEFAULT_TOP_K,
                 vocab_size: int | None = None, temperature: float = 1.0,
                 chunk_positions: int = 1024) -> TeacherTopK:
    """Top-k logits and log-normaliser from the teacher's final hidden states, chunk by chunk."""
    vocab = vocab_size or teacher_head.shape[0]
    head = teacher_head[:vocab]
    hidden = teacher_hidden.reshape(-1, teacher_hidden.shape[-1])
    parts = []
    for start in range(0, hidden.shape[0], chunk_positions):
        logits = (hidden[start:start + chunk_positions] @ head.T).float()
        top = logits.topk(k, dim=-1)
        parts.append((top.values, top.indices, torch.logsumexp(logits / temperature, dim=-1)))
    lead = teacher_hidden.shape[:-1]
    values, indices, lse = (torch.cat(p) for p in zip(*parts))
    return TeacherTopK(values.reshape(*lead, k), indices.reshape(*lead, k), lse.reshape(lead), temperature)


def cache_key(teacher_id: str, data_order_id: str, *, k: int, vocab_size: int, temperature: float) -> str:
    """24 hex digits naming one teacher's logits on one data order."""
    identity = json.dumps({"teacher": teacher_id, "data_order": data_order_id, "k": k,
                           "vocab_size": vocab_size, "temperature": float(temperature)}, sort_keys=True)
    return hashlib.sha256(identity.encode()).hexdigest()[:24]


class TeacherCache:
    """A complete cache, opened for reading (``TeacherCache.open``) or being written (``create``).

    ``teacher_id`` should say which weights (a name and revision, or a hash of
    the checkpoint); ``data_order_id`` which batches in which order (corpus,
    seed, batch shape). Two runs with the same pair of ids read the same cache.
    """

    def __init__(self, folder: Path, meta: dict, mode: str) -> None:
        self.folder = folder
        self.meta = meta
        self.steps = int(meta["steps"])
        self.batch_shape = tuple(meta["batch_shape"])
        self.k = int(meta["k"])
        self.temperature = float(meta["temperature"])
        numpy_value, self._torch_value = _VALUE_DTYPES[meta["value_dtype"]]
        index_dtype = np.uint16 if int(meta["vocab_size"]) <= 1 << 16 else np.int32
        shape = (self.steps, *self.batch_shape)
        open_array = (lambda name, dtype, shp: np.lib.format.open_memmap(
            folder / name, mode="w+", dtype=dtype, shape=shp)) if mode == "w" else (
            lambda name, dtype, shp: np.load(folder / name, mmap_mode="r"))
        self._values = open_array("values.npy", numpy_value, (*shape, self.k))
        self._indices = open_array("indices.npy", index_dtype, (*shape, self.k))
        self._lse = open_array("logsumexp.npy", np.float32, shape)
        self._written = np.zeros(self.steps, dtype=bool) if mode == "w" else None

    # -- reading ---------------------------------------------------------
    @classmethod
    def open(cls, root: str | os.PathLike, teacher_id: str, data_order_id: str, *, k: int = DEFAULT_TOP_K,
             vocab_size: int, temperature: float = 1.0) -> "TeacherCache | None":
        """The complete cache for this teacher and data order, or None when there is none yet."""
        folder = Path(root) / cache_key(teacher_id, data_order_id, k=k, vocab_size=vocab_size, temperature=temperature)
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            problem = _damage(folder, meta.get("files"))
        except (OSError, ValueError) as exc:
            problem = f"meta.json unreadable ({exc})"
        if problem:  # never read a damaged cache: drop it, and the caller writes it again
            warnings.warn(f"teacher cache {folder} is damaged ({problem}); it is removed and rebuilt", stacklevel=2)
            shutil.rmtree(folder, ignore_errors=True)
            return None
        return cls(folder, meta, "r")

    def read(self, step: int, device: torch.device | str | None = None) -> TeacherTopK:
        """The teacher's top-k for one step, shaped ``[*batch_shape, k]``."""
        values = torch.from_numpy(np.array(self._values[step]))  # a copy: the memmap is read-only
        if self._torch_value is torch.bfloat16:
            values = values.view(torch.bfloat16)
        indices = torch.from_numpy(self._indices[step].astype(np.int64))
        lse = torch.from_numpy(np.array(self._lse[step]))
        if device is not None and torch.device(device).type == "cuda":
            values, indices, lse = (t.pin_memory().to(device, non_blocking=True) for t in (values, indices, lse))
        return TeacherTopK(values, indices, lse, self.temperature)

    # -- writing ---------------------------------------------------------
    @classmethod
    def create(cls, root: str | os.PathLike, teacher_id: str, data_order_id: str, *, steps: int,
               batch_shape: tuple[int, ...], k: int = DEFAULT_TOP_K, vocab_size: int, temperature: float = 1.0,
               value_dtype: str = "float32") -> "TeacherCache":
        """Start writing a cache of ``steps`` batches; call ``write`` for each step, then ``finish``.

        ``value_dtype`` "float32" keeps the logits exactly; "bfloat16" halves
        the values' share of the disk (388 -> 260 bytes per token at k=64).
        """
        if value_dtype not in _VALUE_DTYPES:
            raise ValueError(f"value_dtype {value_dtype!r}; accepted: {', '.join(_VALUE_DTYPES)}")
        key = cache_key(teacher_id, data_order_id, k=k, vocab_size=vocab_size, temperature=temperature)
        partial = Path(root) / f"{key}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        meta = {"teacher_id": teacher_id, "data_order_id": data_order_id, "k": k, "vocab_size": vocab_size,
                "temperature": float(temperature), "steps": steps, "batch_shape": list(batch_shape),
                "value_dtype": value_dtype, "key": key}
        return cls(partial, meta, "w")

    def write(self, step: int, top: TeacherTopK) -> None:
        """Store one step's top-k (any device; copied to the host)."""
        if top.values.shape != (*self.batch_shape, self.k):
            raise ValueError(f"step {step}: top-k of shape {tuple(top.values.shape)}, "
                             f"cache expects {(*self.batch_shape, self.k)}")
        if top.temperature != self.temperature:
            raise ValueError(f"top-k at temperature {top.temperature}, cache holds {self.temperature}")
        values = top.values.detach().to("cpu", self._torch_value)
        if self._torch_value is torch.bfloat16:
            values = values.view(torch.int16)
        self._values[step] = values.numpy()
        self._indices[step] = top.indices.detach().cpu().numpy().astype(self._indices.dtype)
        self._lse[step] = top.logsumexp.detach().float().cpu().numpy()
        self._written[step] = True

    def finish(self) -> "TeacherCache":
        """Flush, then publish the cache under its key; returns it opened for reading."""
        missing = np.flatnonzero(~self._written)
        if missing.size:
            raise ValueError(f"cache incomplete: {missing.size} of {self.steps} steps not written "
                             f"(first: step {missing[0]})")
        for array in (self._values, self._indices, self._lse):
            array.flush()
        self.meta["files"] = {name: {"bytes": (self.folder / name).stat().st_size, "sha256": _sha256(self.folder / name)}
                              for name in CACHE_FILES}
        (self.folder / "meta.json").write_text(json.dumps(self.meta, indent=1))
        final = self.folder.parent / self.meta["key"]
        try:
            os.replace(self.folder, final)
        except OSError:  # another process published the same cache first; theirs is as good
            shutil.rmtree(self.folder, ignore_errors=True)
        return TeacherCache(final, self.meta, "r")


CACHE_FILES = ("values.npy", "indices.npy", "logsumexp.npy")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _damage(folder: Path, files: dict | None) -> str:
    """What is wrong with a published cache's arrays ('' when each has its recorded size and checksum)."""
    if not files:
        return "no sizes and checksums recorded (written by an older capgap)"
    for name in CACHE_FILES:
        path, want = folder / name, files.get(name, {})
        if not path.is_file():
            return f"{name} missing"
        if path.stat().st_size != want.get("bytes"):
            return f"{name} has {path.stat().st_size} bytes, {want.get('bytes')} were written"
        if _sha256(path) != want.get("sha256"):
            return f"{name} does not match its checksum"
    return ""


def data_order_id(train_ids: torch.Tensor, order: torch.Tensor, *, seq_len: int, micro_batch: int,
                  rank: int = 0, world_size: int = 1) -> str:
    """Names the exact sequence of micro-batches a run sees: the tokens, the window order, the shapes.

    Under data parallel each process caches its own slice, so rank and world size are part of it.
    """
    digest = hashlib.sha256()
    digest.update(train_ids.numpy().tobytes())
    digest.update(order.numpy().tobytes())
    digest.update(f"{seq_len}/{micro_batch}/{rank}/{world_size}".encode())
    return digest.hexdigest()[:24]


class CachedTeacher:
    """The teacher of one run as top-k per micro-batch: read from a complete cache, or computed and recorded.

    The first student of a sweep finds no cache, runs the teacher, and writes
    every micro-batch's top-k as it trains (it trains on the same top-k the
    later students read, so all students of the sweep see one teacher signal);
    ``finish`` publishes the cache. Later students only read.
    """

    def __init__(self, root: str | os.PathLike, teacher_id: str, order_id: str, *, micro_batches: int,
                 batch_shape: tuple[int, int], vocab_size: int, temperature: float = 1.0,
                 k: int = DEFAULT_TOP_K) -> None:
        self._reader = TeacherCache.open(root, teacher_id, order_id, k=k, vocab_size=vocab_size,
                                         temperature=temperature)
        self._writer = None if self._reader is not None else TeacherCache.create(
            root, teacher_id, order_id, steps=micro_batches, batch_shape=batch_shape, k=k, vocab_size=vocab_size,
            temperature=temperature)
        self.k, self.vocab_size, self.temperature = k, vocab_size, temperature

    @property
    def mode(self) -> str:
        """'read' (this run reused a cache) or 'written' (this run ran the teacher and wrote it)."""
        return "read" if self._reader is not None else "written"

    def topk(self, index: int, inputs: torch.Tensor, teacher: torch.nn.Module | None) -> TeacherTopK:
        """Micro-batch ``index``'s teacher top-k (``teacher`` is only run when writing)."""
        if self._reader is not None:
            return self._reader.read(index, inputs.device)
        if teacher is None:
            raise ValueError("no teacher cache to read, and no teacher to compute one")
        with torch.no_grad():
            hidden = teacher.base_model(input_ids=inputs).last_hidden_state
            top = teacher_topk(hidden, teacher.get_output_embeddings().weight, k=self.k, vocab_size=self.vocab_size,
                               temperature=self.temperature)
        self._writer.write(index, top)
        return top

    def finish(self) -> None:
        if self._writer is not None:
            self._writer.finish()
