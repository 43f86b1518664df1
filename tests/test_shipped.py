"""Shipped data by name: `capgap data` lists it, and its names work wherever a path is taken."""

import json
from pathlib import Path

from capgap.core.resources import data_path
from capgap.commands.shipped import shipped_data, shipped_path


def test_every_kind_ships_and_every_file_exists():
    items = shipped_data()
    assert {i.kind for i in items} == {"runs", "law", "ladder", "corpus", "reference"}
    assert all(i.path is None or i.path.exists() for i in items)
    names = {i.name for i in items}
    assert {"shakespeare-study", "cpu-demo", "zhang2023", "pythia", "shakespeare-study-ladder", "shakespeare",
            "minima_family_benchmarks"} <= names


def test_a_name_resolves_to_the_shipped_file_and_a_real_path_wins(tmp_path, monkeypatch):
    assert shipped_path("shakespeare-study") == str(data_path("runs", "shakespeare-study.jsonl"))
    assert shipped_path("shakespeare-study.jsonl") == str(data_path("runs", "shakespeare-study.jsonl"))
    assert shipped_path("nosuch") == "nosuch"  # the reader's own 'not found' names what was given
    assert shipped_path("pythia") == "pythia"  # built-in ladders have no file: left to the ladder reader
    monkeypatch.chdir(tmp_path)
    Path("shakespeare-study").write_text("mine")
    assert shipped_path("shakespeare-study") == "shakespeare-study"
    # the checkout's path works outside the checkout
    assert shipped_path("data/runs/shakespeare-study.jsonl") == str(data_path("runs", "shakespeare-study.jsonl"))


def test_capgap_data_lists_names_with_paths(run_cli, tmp_path):
    result = run_cli("data", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    study = next(line for line in lines if line.split()[0] == "shakespeare-study")
    assert str(data_path("runs", "shakespeare-study.jsonl")) in study
    assert "law:" in lines and "corpus:" in lines and "ladder:" in lines
    listed = json.loads(run_cli("data", "--json", cwd=tmp_path).stdout)
    assert {"kind": "law", "name": "cpu-demo"}.items() <= next(i for i in listed if i["name"] == "cpu-demo").items()


def test_names_work_as_paths_from_another_folder(run_cli, tmp_path):
    validate = run_cli("runs", "validate", "shakespeare-study", cwd=tmp_path)
    assert validate.returncode == 0, validate.stderr
    # students cut to one target from different teachers are one size, as `fit` groups them
    assert "ok, 72 runs" in validate.stdout and "4 student sizes" in validate.stdout
    frontier = run_cli("pareto", "minima_family_benchmarks", cwd=tmp_path)
    assert frontier.returncode == 0 and "4 of 13 points" in frontier.stdout
