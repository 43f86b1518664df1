"""Student kinds outside measure: records, CSV, groups, fit --kind, recommend --student-kind, evidence, Pareto."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from capgap.commands.cli import main
from capgap.core.errors import InputError
from capgap.runs.groups import group_runs
from capgap.runs.records import RunRecord, run_id_for

OLD_LINE = {"run_id": "", "family": "gpt2", "student_params": 50_000, "teacher_params": 174_000, "tokens": 250_000,
            "student_init": "pruned", "seed": 0, "metrics": {"eval_loss": 4.6}, "source": "capgap"}


def _moe(**change) -> RunRecord:
    data = {**OLD_LINE, "student_params": 62_000, "student_kind": "moe", "experts": 4,
            "student_active_params": 50_300, **change}
    return RunRecord.model_validate(data)


def test_an_moe_student_is_placed_by_its_active_size() -> None:
    record = _moe(student_params_nonembed=40_000)
    assert record.size("student") == 50_300 and record.size("student", "nonembed") == 40_000 - (62_000 - 50_300)
    assert record.size("teacher") == 174_000


def test_a_record_from_before_the_kinds_loads_dense_with_its_old_id() -> None:
    record = RunRecord.model_validate(OLD_LINE)
    assert record.student_kind == "dense" and record.experts is None
    assert record.student_active_params == record.student_params == 50_000
    config = {k: OLD_LINE.get(k) for k in ("family", "student_params", "teacher_params", "tokens", "student_init",
                                             "alpha", "temperature", "seed", "source")}
    assert record.run_id == run_id_for(config)  # the kind did not change dense ids


def test_moe_records_round_trip_and_validate(tmp_path: Path) -> None:
    from capgap.runs.store import RunStore, read_csv_runs, write_csv_runs

    record = _moe()
    assert record.run_id != RunRecord.model_validate({**OLD_LINE, "student_params": 62_000}).run_id
    store = tmp_path / "runs.jsonl"
    RunStore(store).append(record)
    back = RunStore(store).load(strict=True)[0]
    assert (back.student_kind, back.experts, back.student_active_params) == ("moe", 4, 50_300)
    write_csv_runs([record], tmp_path / "runs.csv")
    again = read_csv_runs(tmp_path / "runs.csv")[0]
    assert (again.student_kind, again.experts, again.student_active_params, again.run_id) == \
        ("moe", 4, 50_300, record.run_id)
    for bad, says in (({"experts": None}, "needs experts"), ({"student_active_params": 70_000}, "at most"),
                      ({"student_kind": "dense"}, "set student_kind to moe")):
        with pytest.raises(ValueError, match=says):
            _moe(**bad)


def test_store_line_with_bad_kind_is_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps({**OLD_LINE, "student_kind": "sparse"}) + "\n")
    assert main(["runs", "validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "student_kind" in err and "\n" not in err


def _curve_runs(kind: str, optimum_ratio: float) -> list[RunRecord]:
    """Runs whose loss is a parabola in ln T about optimum_ratio * S, 2 seeds, 2 student sizes, 5 teachers."""
    runs = []
    for size in (50_000, 150_000):
        total = size * 2 if kind == "moe" else size
        for teacher in (62_000, 174_000, 334_000, 544_000, 803_000, 1_200_000):
            if teacher <= size:
                continue
            for seed in (0, 1):
                loss = 5.0 - 0.2 * math.log(size) / 10 + 0.05 * math.log(teacher / (optimum_ratio * size)) ** 2
                extra = {"student_kind": "moe", "experts": 4, "student_active_params": size} if kind == "moe" else {}
                runs.append(RunRecord(family="gpt2", student_params=total, teacher_params=teacher, tokens=250_000,
                                      student_init="pruned", seed=seed, source="test",
                                      metrics={"eval_loss": loss + 0.001 * seed}, **extra))
    return runs


def test_kinds_are_separate_groups_even_at_one_size() -> None:
    dense = RunRecord.model_validate(OLD_LINE)
    runs = [RunRecord.model_validate({**OLD_LINE, "teacher_params": t, "metrics": {"eval_loss": 4.0 + i}})
            for i, t in enumerate((100_000, 200_000, 400_000))]
    # MoE students of the dense students' active size: the laws place them by it (their total is larger).
    moe = [RunRecord.model_validate({**r.model_dump(), "run_id": "", "student_kind": "moe", "experts": 4,
                                     "student_params": 80_000 + i, "student_active_params": 50_000})
           for i, r in enumerate(runs)]
    assert moe[0].size("student") == 50_000 and moe[0].student_params == 80_000
    groups = group_runs(runs + moe, "eval_loss", "lower")
    assert [(k.student_kind, k.student_params) for k in groups.keys] == [("dense", 50_000), ("moe", 50_000)]
    assert groups.keys[1].label() == "gpt2 pruned moe 50k, 250k tokens" and dense.student_kind == "dense"


def test_fit_by_kind_marks_the_law_and_recommend_answers_from_it(tmp_path: Path, capsys) -> None:
    from capgap.runs.kinds import law_kinds
    from capgap.fit.law_fit import fit_law
    from capgap.laws.base import load_law, save_law
    from capgap.runs.store import RunStore

    runs = _curve_runs("dense", 3.0) + _curve_runs("moe", 3.0)
    with pytest.raises(InputError, match="no runs of student kind 'moe'; the runs have: dense"):
        fit_law(_curve_runs("dense", 3.0), law="ratio", bootstrap=0, student_kind="moe")
    law = fit_law(runs, law="ratio", bootstrap=0, student_kind="moe")
    assert law_kinds(law.file) == ["moe"] and "student_kind moe" in law.file.provenance
    assert law.file.coefficients["r"] == pytest.approx(3.0, rel=0.05)  # of the MoE students' active size
    path = tmp_path / "moe-law.json"
    save_law(law, path)
    assert law_kinds(load_law(path).file) == ["moe"]
    # From the command line: --kind selects, the file says so, and recommend answers from it without a caveat.
    store = tmp_path / "runs.jsonl"
    RunStore(store).extend(runs)
    capsys.readouterr()
    assert main(["fit", str(store), "--kind", "dense", "--law", "ratio", "--bootstrap", "0",
                 "--out", str(tmp_path / "dense-law.json")]) == 0
    assert law_kinds(load_law(tmp_path / "dense-law.json").file) == ["dense"]
    assert "MoE students: active sizes" not in capsys.readouterr().out.splitlines()[0]
    assert main(["fit", str(store), "--kind", "moe", "--law", "ratio", "--bootstrap", "0"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith("sizes (MoE students: active sizes)")
    assert main(["recommend", "--student", "100k", "--student-kind", "moe", "--law", str(path), "--ladder", "none"]) == 0
    out = capsys.readouterr().out
    assert "no published law covers MoE students" not in out and "300k" in out.splitlines()[0]
    # A dense law given for an MoE student: said first.
    assert main(["recommend", "--student", "100k", "--student-kind", "moe", "--law", str(tmp_path / "dense-law.json"),
                 "--ladder", "none"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("warning: law ") and out.index("fitted on dense students, not MoE ones") < out.index("distil")


def test_recommend_moe_without_a_moe_law_says_so_first(capsys) -> None:
    from capgap.recommender.answer import recommend

    assert main(["recommend", "--student", "28M", "--student-kind", "moe"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("warning: no published law covers MoE students")
    dense = recommend("28M")
    moe = recommend("28M", student_kind="moe")
    assert moe.teacher_params == dense.teacher_params and dense.kind_caveat is None  # the dense answer
    assert moe.student_kind == "moe" and json.loads(moe.to_json())["kind_caveat"].startswith("no published law")
    with pytest.raises(SystemExit) as refused:  # argparse's choices: one line, exit 2
        main(["recommend", "--student", "28M", "--student-kind", "sparse"])
    assert refused.value.code == 2


def test_evidence_labels_minimoe_rows_moe() -> None:
    from capgap.recommender.evidence import evidence

    found = {c.student: c for c in evidence()}
    moe = found["MiniMoE-3L-384H"]
    assert moe.student_kind == "moe" and moe.observed_best == "BERT-large"
    assert "taken at its total size" in moe.verdicts[0].why
    assert found["MiniLM-3L-384H"].student_kind == "dense" and found["MiniLM-3L-384H"].observed_best == "BERT-base"


def test_pareto_puts_moe_students_on_active_compute_with_total_size_in_the_label() -> None:
    from capgap.plots.pareto import MOE_COMPUTE_LABEL, pareto_from_runs
    from capgap.sizes.units import distill_flops

    moe = _moe()
    result = pareto_from_runs([moe, RunRecord.model_validate(OLD_LINE)])
    point = next(p for p in result.points if "MoE" in p.name)
    assert point.compute == distill_flops(50_300, 174_000, 250_000)
    assert point.name.startswith("50.3k active (62k total, MoE×4) pruned <- ")
    assert result.compute_label == MOE_COMPUTE_LABEL


def test_the_runs_figure_calls_only_moe_students_active_and_reads_ratios_plainly() -> None:
    # It labelled dense students "S = 50k active" beside MoE ones, and its ratio axis read 2×10⁰.
    from capgap.plots.figures import runs_figure

    figure = runs_figure(_curve_runs("dense", 3.0) + _curve_runs("moe", 3.0))
    ax = figure.axes[0]
    labels = [line.get_label() for line in ax.get_lines() if line.get_gid() == "run"]
    assert sorted(labels) == ["gpt2 S = 150k active, pruned MoE×4", "gpt2 S = 150k, pruned",
                              "gpt2 S = 50k active, pruned MoE×4", "gpt2 S = 50k, pruned"]
    tick = ax.xaxis.get_major_formatter()
    assert [tick(v, 0) for v in (1.0, 2.0, 5.0, 10.0)] == ["1x", "2x", "5x", "10x"]
