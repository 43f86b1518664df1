"""One plain config per job: the CLI's defaults are the configs' own, and reading them needs no torch."""

import argparse
import subprocess
import sys
import typing
from dataclasses import fields

import pytest

from capgap.commands.cli import build_parser, main
from capgap.commands.config_flags import flag_fields, job_from_args
from capgap.commands.measure import measure_config
from capgap.measure.config import FLAG, AssistantConfig, LadderConfig, MeasureConfig, TrainConfig


def test_measure_flags_left_out_give_the_config_defaults():
    args = build_parser("measure").parse_args(["measure", "--teachers", "T", "--students", "0.4", "--tokens", "1M",
                                               "--runs", "r.jsonl"])
    expected = MeasureConfig(teachers="T", students="0.4", store="r.jsonl", train=TrainConfig(tokens=1_000_000),
                             progress=True)
    assert measure_config(args) == expected


def test_ladder_flags_left_out_give_the_config_defaults():
    args = build_parser("ladder").parse_args(["ladder", "train", "--family", "gpt2", "--sizes", "L2-d64",
                                              "--out", "o", "--tokens", "2M"])
    assert job_from_args(LadderConfig, args).train == TrainConfig(tokens=2_000_000)
    assert (args.vocab_size, args.tokenizer, args.corpus) == (LadderConfig.vocab_size, LadderConfig.tokenizer,
                                                              LadderConfig.corpus)


def test_no_wikitext_flag_turns_the_evaluation_off():
    args = build_parser("measure").parse_args(["measure", "--teachers", "T", "--students", "0.4", "--tokens", "1M",
                                               "--runs", "r.jsonl", "--no-wikitext"])
    assert measure_config(args).wikitext is False


def test_the_configs_import_without_torch():
    code = "import sys, capgap.measure.config, capgap.commands.measure; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


# Each verb, the words before its flags, and the config its flags describe.
VERBS = {"measure": (["measure"], MeasureConfig), "assistant": (["assistant"], AssistantConfig),
         "ladder train": (["ladder", "train"], LadderConfig)}
HAND_FLAGS = {"help", "plan", "json"}  # the flags that mirror no config field


def _options(verb: str) -> dict[str, argparse.Action]:
    """The verb's flags by dest."""
    words, _ = VERBS[verb]
    parser = build_parser(words[0])
    for word in words:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
    dests = [a.dest for a in parser._actions]
    assert len(dests) == len(set(dests)), f"{verb}: a dest declared twice"
    return {a.dest: a for a in parser._actions}


def _sample(config: type, name: str, i: int) -> tuple[list[str], object]:
    """Words that set field ``name`` of ``config`` to something other than its default, and the value they give."""
    f = next(f for f in fields(config) if f.name == name)
    spec, hint = f.metadata[FLAG], typing.get_type_hints(config)[name]
    option = spec.name or "--" + name.replace("_", "-")
    if hint is bool:
        return [option], not f.default
    if spec.choices:
        return [option, spec.choices[-1]], spec.choices[-1]
    if spec.size:
        return [option, f"{i + 3}k"], (i + 3) * 1000
    if typing.get_origin(hint) is tuple:
        return [option, f"a{i},b"], (f"a{i}", "b")
    kind = next(a for a in typing.get_args(hint) if a is not type(None)) if typing.get_args(hint) else hint
    value = {int: i + 7, float: 0.25 + i, str: f"v{i}"}[kind]
    return [option, str(value)], value


def _config_of(verb: str, *argv: str):  # noqa: ANN202
    words, job = VERBS[verb]
    return job_from_args(job, build_parser(words[0]).parse_args([*words, *argv]))


def _required(verb: str) -> list[str]:
    """Words that give the verb's required flags."""
    _, job = VERBS[verb]
    options = _options(verb)
    return [word for config in (job, TrainConfig) for f in flag_fields(config)
            if f.name in options and options[f.name].required for word in _sample(config, f.name, 0)[0]]


@pytest.mark.parametrize("verb", VERBS)
def test_every_flag_is_a_config_field_and_reaches_the_config(verb):
    _, job = VERBS[verb]
    options = _options(verb)
    job_flags = {f.name for f in flag_fields(job)}
    train_flags = {f.name for f in flag_fields(TrainConfig)} & options.keys()
    assert set(options) - HAND_FLAGS == job_flags | train_flags  # no flag mirrors a config field by hand
    assert not job_flags & train_flags
    base = _required(verb)
    for i, name in enumerate(sorted(job_flags | train_flags)):
        config = job if name in job_flags else TrainConfig
        words, value = _sample(config, name, i)
        built = _config_of(verb, *base, *words)
        assert getattr(built if config is job else built.train, name) == value, (verb, words)


def _shared(a: str, b: str) -> list[tuple[argparse.Action, argparse.Action]]:
    left, right = _options(a), _options(b)
    return [(left[d], right[d]) for d in sorted(left.keys() & right.keys() - HAND_FLAGS - {"tokens"})]


@pytest.mark.parametrize("other", ["assistant", "ladder train"])
def test_the_verbs_shared_flags_cannot_drift(other):
    shared = _shared("measure", other)
    assert len(shared) >= (12 if other == "assistant" else 8)
    for mine, theirs in shared:
        if other == "ladder train" and mine.dest == "eval_tokens":  # LadderConfig's own field: held-out per rung
            continue
        same = ("option_strings", "help", "default", "metavar", "choices", "required", "const")
        assert [getattr(mine, k) for k in same] == [getattr(theirs, k) for k in same], mine.dest
        assert type(mine) is type(theirs)
        assert [_reads(mine, word) for word in ("3", "2k", "a,b")] == [_reads(theirs, word) for word in ("3", "2k", "a,b")]


def _reads(action: argparse.Action, word: str) -> object:
    try:
        return action.type(word) if action.type else word
    except ValueError as exc:
        return type(exc)


def test_bad_flag_values_give_one_line_and_exit_2(capsys):
    for words in (["--alpha", "half"], ["--eval-tokens", "lots"]):
        with pytest.raises(SystemExit) as stop:
            main(["assistant", "--teacher", "T", "--student", "1k", "--candidates", "0.5", "--runs", "r.jsonl",
                  "--tokens", "1k", *words])
        assert stop.value.code == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
