"""recommend's teacher-assistant chain through an assistant `capgap assistant` measured (no torch needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from capgap import recommend
from capgap.recommender.assistants import measured_assistant
from capgap.commands.cli import main
from capgap.core.errors import InputError
from capgap.runs.records import RunRecord
from capgap.runs.store import RunStore

B = 10**9


def chain_record(student: int, assistant: int, teacher: int, loss: float, role: str = "minidisc-student") -> RunRecord:
    return RunRecord(family="pythia", student_params=student, teacher_params=assistant, tokens=26 * B,
                     student_init="pruned", metrics={"eval_loss": loss}, source="capgap",
                     extra={"role": role, "assistant_params": assistant, "assistant_run": f"a{assistant}",
                            "chain": [{"role": "teacher", "params": teacher}, {"role": "assistant", "params": assistant}],
                            "assistant_scores": [{}, {}, {}], "lambda": 0.2})


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "runs.jsonl"
    RunStore(path).extend([chain_record(int(1.3 * B), 4 * B, 12 * B, 2.31),
                           chain_record(int(1.31 * B), 6 * B, 12 * B, 2.35, role="exhaustive-student"),
                           chain_record(int(0.41 * B), 2 * B, 12 * B, 2.10),  # another student
                           RunRecord(student_params=int(1.3 * B), teacher_params=12 * B, metrics={"eval_loss": 2.4})])
    return path


def test_the_best_matching_measured_chain_is_found(store: Path) -> None:
    found = measured_assistant(store, int(1.3 * B), 12 * B)
    assert found is not None and found.assistant_params == 4 * B and found.student_metric == 2.31
    assert found.lam == 0.2 and found.candidates == 3
    assert measured_assistant(store, int(1.3 * B), 7 * B) is None  # no chain from that teacher
    assert measured_assistant(store, 70 * 10**6, 12 * B) is None


def test_chain_strategy_goes_through_the_measured_assistant(store: Path) -> None:
    law_only = {s.name: s for s in recommend("1.3B", law="reference", available_teacher="12B").strategies}
    rec = recommend("1.3B", law="reference", available_teacher="12B", assistants=store)
    chain = {s.name: s for s in rec.strategies}["teacher_assistant_chain"]
    assert [step.student_params for step in chain.steps] == [4 * B, int(1.3 * B)]
    assert chain.steps[0].teacher_params == 12 * B and chain.extra_runs == 1
    assert "measured" in chain.description and "lambda 0.2" in chain.description
    assert law_only["teacher_assistant_chain"].steps[0].student_params != 4 * B  # the law's size otherwise
    assert any("measured in run" in note for note in rec.notes)


def test_no_matching_chain_falls_back_to_the_law_with_a_note(store: Path) -> None:
    rec = recommend("1.3B", law="reference", available_teacher="7B", assistants=store)
    plain = recommend("1.3B", law="reference", available_teacher="7B")
    assert [s.model_dump() for s in rec.strategies] == [s.model_dump() for s in plain.strategies]
    assert any("the law's sizes are used" in note for note in rec.notes)


def test_assistants_needs_an_available_teacher(store: Path, capsys) -> None:
    with pytest.raises(InputError, match="--available-teacher"):
        recommend("1.3B", assistants=store)
    assert main(["recommend", "--student", "1.3B", "--assistants", str(store / "missing.jsonl"),
                 "--available-teacher", "12B"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("capgap: error:") and "\n" not in err and "not found" in err
