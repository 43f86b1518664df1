"""One plain config per job: the CLI's defaults are the configs' own, and reading them needs no torch."""

import subprocess
import sys

from capgap.commands.cli import build_parser
from capgap.commands.ladder import train_config
from capgap.commands.measure import measure_config
from capgap.measure.config import LadderConfig, MeasureConfig, TrainConfig


def test_measure_flags_left_out_give_the_config_defaults():
    args = build_parser("measure").parse_args(["measure", "--teachers", "T", "--students", "0.4", "--tokens", "1M",
                                               "--runs", "r.jsonl"])
    expected = MeasureConfig(teachers="T", students="0.4", store="r.jsonl", train=TrainConfig(tokens=1_000_000),
                             progress=True)
    assert measure_config(args) == expected


def test_ladder_flags_left_out_give_the_config_defaults():
    args = build_parser("ladder").parse_args(["ladder", "train", "--family", "gpt2", "--sizes", "L2-d64",
                                              "--out", "o", "--tokens", "2M"])
    assert train_config(args) == TrainConfig(tokens=2_000_000)
    assert (args.vocab_size, args.tokenizer, args.corpus) == (LadderConfig.vocab_size, LadderConfig.tokenizer,
                                                              LadderConfig.corpus)


def test_no_wikitext_flag_turns_the_evaluation_off():
    args = build_parser("measure").parse_args(["measure", "--teachers", "T", "--students", "0.4", "--tokens", "1M",
                                               "--runs", "r.jsonl", "--no-wikitext"])
    assert measure_config(args).wikitext is False


def test_the_configs_import_without_torch():
    code = "import sys, capgap.measure.config, capgap.commands.measure; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
