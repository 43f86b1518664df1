"""Model shapes, configs and loading for the GPT2 and Pythia (GPT-NeoX) families.

A size spec ``L4-d128`` names a depth (4 blocks) and a width (128 channels).
Heads: width/64 from width 256 up (GPT2 and Pythia use 64-dim heads: 768 ->
12 heads as in gpt2, 1024 -> 16 as in gpt2-medium), width/32 below that, so
tiny rungs keep 1 to 4 heads (d64 -> 2, d128 -> 4) instead of collapsing to one.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from capgap.core.errors import InputError
from capgap.sizes.units import ParamCount, count_params

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

FAMILIES = ("gpt2", "pythia")
MODEL_TYPE_FAMILY = {"gpt2": "gpt2", "gpt_neox": "pythia"}
_SPEC_RE = re.compile(r"^L(\d+)-d(\d+)$")


@dataclass(frozen=True)
class SizeSpec:
    """Depth and width of a rung; heads follow from the width (module doc)."""

    layers: int
    width: int

    @property
    def heads(self) -> int:
        return self.width // (64 if self.width >= 256 else 32)

    @property
    def name(self) -> str:
        return f"L{self.layers}-d{self.width}"


def parse_spec(text: str) -> SizeSpec:
    """'L4-d128' -> SizeSpec(4, 128)."""
    match = _SPEC_RE.match(text.strip())
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 32 or int(match.group(2)) % 32:
        raise InputError(f"size {text!r} is not a rung spec; expected L<layers>-d<width> with width a multiple of 32 "
                         "(e.g. L2-d64, L4-d128, L12-d768)")
    return SizeSpec(int(match.group(1)), int(match.group(2)))


def build_config(family: str, layers: int, width: int, heads: int, *, vocab_size: int, seq_len: int) -> "PretrainedConfig":
    """A GPT2 or Pythia config of the given shape (no dropout: runs are short and deterministic)."""
    inner = 4 * width
    if family == "gpt2":
        from transformers import GPT2Config

        return GPT2Config(n_layer=layers, n_embd=width, n_head=heads, n_inner=inner, vocab_size=vocab_size,
                          n_positions=seq_len, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                          bos_token_id=0, eos_token_id=0, tie_word_embeddings=True)
    if family == "pythia":
        from transformers import GPTNeoXConfig

        # Pythia's recipe: rotary on 25% of each head, parallel residual, untied output layer.
        return GPTNeoXConfig(num_hidden_layers=layers, hidden_size=width, num_attention_heads=heads,
                             intermediate_size=inner, vocab_size=vocab_size, max_position_embeddings=seq_len,
                             rotary_pct=0.25, use_parallel_residual=True, hidden_dropout=0.0, attention_dropout=0.0,
                             bos_token_id=0, eos_token_id=0, tie_word_embeddings=False)
    raise InputError(f"family {family!r} is not known; accepted: {', '.join(FAMILIES)}")


def rung_config(family: str, spec: SizeSpec, *, vocab_size: int, seq_len: int) -> "PretrainedConfig":
    return build_config(family, spec.layers, spec.width, spec.heads, vocab_size=vocab_size, seq_len=seq_len)


def family_of(config: "PretrainedConfig") -> str:
    """'gpt2' or 'pythia' from a config's model_type."""
    family = MODEL_TYPE_FAMILY.get(config.model_type)
    if family is None:
        raise InputError(f"model_type {config.model_type!r} is not supported; accepted: gpt2, gpt_neox (Pythia)")
    return family


def param_count(config: "PretrainedConfig") -> ParamCount:
    """Total and non-embedding parameters by config arithmetic (capgap.sizes.units)."""
    return count_params(config.to_dict())


def new_model(config: "PretrainedConfig", seed: int) -> "PreTrainedModel":
    """A freshly initialised causal LM of ``config`` (same weights for the same seed)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config)


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes") or \
            os.environ.get("TRANSFORMERS_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def _cached_only(name: str, loader) -> Any:  # noqa: ANN001
    """Try the local Hugging Face cache first; None when the name is not cached."""
    try:
        return loader(name, local_files_only=True)
    except (OSError, ValueError):
        return None


def load_pretrained(name: str, what: str = "config") -> Any:
    """A config, model or tokenizer from a local folder or a hub name, failing fast offline.

    ``what``: 'config', 'model' or 'tokenizer'.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    loader = {"config": AutoConfig, "model": AutoModelForCausalLM, "tokenizer": AutoTokenizer}[what].from_pretrained
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError("folder has no config.json; expected a Hugging Face checkpoint folder", where=str(path))
        try:
            return loader(str(path))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot load {what} ({str(exc).splitlines()[0]})", where=str(path)) from None
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise InputError(f"teacher {name!r} not found: not a checkpoint folder; give a local folder or a Hugging Face name")
    cached = _cached_only(name, loader)
    if cached is not None:
        return cached
    if not _hub_reachable():
        raise InputError(f"teacher {name!r} is not a local folder and the Hugging Face hub is unreachable (offline); "
                         "give a local checkpoint folder or a ladder trained with 'capgap ladder train'")
    try:
        return loader(name)
    except (OSError, ValueError) as exc:
        raise InputError(f"unknown teacher {name!r} ({str(exc).splitlines()[0]}); "
                         "give a Hugging Face model name or a local checkpoint folder") from None


# Files whose bytes are the checkpoint: its config and its weights (not the tokenizer, not a README).
_FINGERPRINT_GLOBS = ("config.json", "*.safetensors", "*.bin")


def checkpoint_fingerprint(source: str) -> str:
    """16 hex digits of SHA-256 over a checkpoint's config and weight files: its identity in run ids and caches.

    A folder retrained in place gets a new fingerprint. A hub name is fingerprinted through its
    local snapshot; a name not downloaded yet is identified by the name alone ('hub:NAME').
    """
    import hashlib

    folder = Path(source).expanduser()
    if not folder.is_dir():
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(source, local_files_only=True))
        except Exception:  # not in the local cache (or no hub client): the name is all we know
            return f"hub:{source}"
    files = sorted({f for pattern in _FINGERPRINT_GLOBS for f in folder.glob(pattern) if f.is_file()})
    if not files:
        raise InputError("no config.json or weight files to fingerprint", where=str(folder))
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]
