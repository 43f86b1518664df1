"""The flags that mirror a config, made from the config: each flag is declared once, beside its field.

A field made with capgap.measure.config.flag becomes a flag: its name the field's with dashes (or the Flag's
own), its dest the field's name, its type from the annotation (a bool a switch, a tuple a comma-separated list,
a size when the Flag says so), its default the field's (none: the flag is required), its help the Flag's.
`job_from_args` builds the config back from the parsed flags.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable
from dataclasses import MISSING, Field, fields
from typing import Any

from capgap.measure.config import FLAG, Flag, Job, TrainConfig
from capgap.sizes.units import parse_size

RECIPE = ("tokens", "seq_len", "batch_tokens", "micro_batch", "lr", "device", "seed")  # every verb's TrainConfig flags
DISTILL = (*RECIPE, "alpha", "temperature")  # a distillation's: the weight and temperature of KD too


def flag_fields(config: type) -> list[Field]:
    """The fields of ``config`` that are flags: its own first, then its bases' (the order of --help)."""
    def depth(f: Field) -> int:
        return next(i for i, klass in enumerate(config.__mro__) if f.name in vars(klass).get("__annotations__", {}))

    return sorted((f for f in fields(config) if FLAG in f.metadata), key=depth)


def add_job_flags(parser: argparse.ArgumentParser, job: type[Job], recipe: Iterable[str], **overrides: dict) -> None:
    """A flag for each flag field of ``job``, then for the ``recipe`` fields of its TrainConfig.

    ``overrides`` maps a field to add_argument keywords where a verb means more than the field says (its --tokens).
    """
    wanted = set(recipe)
    chosen = [(job, f) for f in flag_fields(job)] + \
             [(TrainConfig, f) for f in flag_fields(TrainConfig) if f.name in wanted]
    for config, f in chosen:
        names, kwargs = _argument(f, typing.get_type_hints(config)[f.name])
        parser.add_argument(*names, **{**kwargs, **overrides.pop(f.name, {})})
    if overrides:
        raise ValueError(f"no such flag field: {', '.join(overrides)}")


def job_from_args(job: type[Job], args: argparse.Namespace, **given: Any) -> Any:
    """The ``job`` the parsed flags describe, its TrainConfig too (fields whose flag the verb lacks keep their
    defaults); ``given`` sets the fields no flag reads."""
    return _from_args(job, args, train=_from_args(TrainConfig, args), **given)


def _from_args(config: type, args: argparse.Namespace, **given: Any) -> Any:
    read = {f.name: getattr(args, f.name) for f in flag_fields(config) if hasattr(args, f.name)}
    return config(**{**read, **given})


def _argument(f: Field, hint: Any) -> tuple[list[str], dict[str, Any]]:
    """The add_argument call that reads field ``f`` (annotated ``hint``)."""
    spec: Flag = f.metadata[FLAG]
    name = spec.name or "--" + f.name.replace("_", "-")
    default = None if f.default is MISSING else f.default
    shown = f"{default:g}" if isinstance(default, float) else str(default)
    kwargs: dict[str, Any] = {"dest": f.name, "help": spec.help and spec.help.replace("{default}", shown)}
    kind = next(a for a in typing.get_args(hint) if a is not types.NoneType) if isinstance(hint, types.UnionType) else hint
    if kind is bool:
        if default and spec.name is None:
            raise ValueError(f"{f.name} defaults to True: its Flag names the switch that turns it off")
        return [name], {**kwargs, "action": "store_false" if default else "store_true"}
    if spec.size:
        kwargs["type"] = lambda s: parse_size(s, what=name)
    elif typing.get_origin(kind) is tuple:
        kwargs["type"] = lambda s: tuple(s.split(","))
    elif kind is not str:
        kwargs["type"] = kind
    return [name, *spec.aliases], {**kwargs, "default": default, "required": f.default is MISSING,
                                   "metavar": spec.metavar, "choices": spec.choices}
