"""Known model ladders (GPT2, Pythia) with exact counts, and user ladders from CSV."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from capgap.core.errors import InputError
from capgap.sizes.units import count_params, gpt2_config, neox_config, parse_size


class LadderModel(BaseModel):
    """One real model a user can take as teacher."""

    model_config = ConfigDict(frozen=True)
    name: str
    params: int
    params_nonembed: int | None = None
    hf_name: str | None = None

    def size(self, measure: str = "total") -> int:
        if measure == "nonembed":
            if self.params_nonembed is None:
                raise InputError(f"ladder model {self.name} has no non-embedding count; use --size total")
            return self.params_nonembed
        return self.params


def _from_config(name: str, hf_name: str, config: dict) -> LadderModel:
    count = count_params(config)
    return LadderModel(name=name, params=count.total, params_nonembed=count.nonembed, hf_name=hf_name)


# Architectures from the published configs (openai-community/gpt2*, EleutherAI/pythia-*).
GPT2_CONFIGS = {
    "gpt2": gpt2_config(12, 768, 12),
    "gpt2-medium": gpt2_config(24, 1024, 16),
    "gpt2-large": gpt2_config(36, 1280, 20),
    "gpt2-xl": gpt2_config(48, 1600, 25),
}
PYTHIA_CONFIGS = {
    "pythia-70m": neox_config(6, 512, 8),
    "pythia-160m": neox_config(12, 768, 12),
    "pythia-410m": neox_config(24, 1024, 16),
    "pythia-1b": neox_config(16, 2048, 8),
    "pythia-1.4b": neox_config(24, 2048, 16),
    "pythia-2.8b": neox_config(32, 2560, 32),
    "pythia-6.9b": neox_config(32, 4096, 32, vocab_size=50432),
    "pythia-12b": neox_config(36, 5120, 40, vocab_size=50688),
}

KNOWN_LADDERS: dict[str, list[LadderModel]] = {
    "gpt2": [_from_config(n, n, c) for n, c in GPT2_CONFIGS.items()],
    "pythia": [_from_config(n, f"EleutherAI/{n}", c) for n, c in PYTHIA_CONFIGS.items()],
}


def read_ladder_csv(path: str | Path) -> list[LadderModel]:
    """A CSV with columns name,params (params_nonembed, hf_name optional)."""
    from capgap.core.tables import read_csv_table  # pandas: only CSV ladders need it (recommend starts fast)

    path = Path(path)
    if not path.is_file():
        raise InputError("ladder file not found; give pythia, gpt2, none or a CSV with name,params columns", where=str(path))
    table = read_csv_table(path, expected="a ladder CSV with name,params columns")
    missing = {"name", "params"} - set(table.columns)
    if missing:
        raise InputError(f"ladder CSV lacks column(s) {', '.join(sorted(missing))}; required: name,params (found: {', '.join(table.columns)})", where=str(path))
    if table.empty:
        raise InputError("ladder CSV has no rows; expected one row per model with name,params", where=str(path))
    models = []
    for i, row in enumerate(table.to_dict("records"), start=2):
        where = f"{path}:{i}"
        nonembed = row.get("params_nonembed") or None
        models.append(LadderModel(
            name=row["name"] or f"row{i}",
            params=parse_size(row["params"], what=f"{where}: params"),
            params_nonembed=parse_size(nonembed, what=f"{where}: params_nonembed") if nonembed else None,
            hf_name=row.get("hf_name") or None,
        ))
    return sorted(models, key=lambda m: m.params)


def get_ladder(spec: str) -> list[LadderModel]:
    """'pythia', 'gpt2', 'none' (empty) or a path to a ladder CSV."""
    key = spec.lower()
    if key in KNOWN_LADDERS:
        return list(KNOWN_LADDERS[key])
    if key == "none":
        return []
    if spec.endswith(".csv") or Path(spec).exists():
        return read_ladder_csv(spec)
    raise InputError(f"unknown ladder {spec!r}; accepted: pythia, gpt2, none, a shipped ladder's name (capgap data) "
                     "or a CSV path with name,params columns")
