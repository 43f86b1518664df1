"""capgap recommend: interval, ladder snapping, strategy costs, warnings, JSON, start-up, bad input;
both published laws side by side, regimes, sizes, teacher cost, compute-optimal distillation, near misses.

Most tests use a ratio law defined here (T* = 2.5·S, interval 2·S–3·S) and a
ladder with round sizes, so every expected FLOP count is worked by hand:
student S = 1e9, D = 20e9 tokens, one run = 6·S·D + 2·T·D.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import capgap
import capgap.laws.files
from capgap.commands.cli import main
from capgap.laws.files import shipped_law_path
from capgap.core.errors import InputError
from capgap.sizes.ladders import KNOWN_LADDERS, LadderModel
from capgap.laws.base import LawFile, TeacherEstimate, law_from_file, register_law
from capgap.recommender.answer import Recommendation, recommend

TEST_FAMILY = "test_recommend_ratio"


@register_law(TEST_FAMILY)
class RatioTestLaw:
    """T* = r·S with interval [low·S, high·S]; optional censoring and metric prediction from the file."""

    name = TEST_FAMILY

    def __init__(self, file: LawFile) -> None:
        self.file = file
        self.c = file.coefficients

    def optimal_teacher(self, student_params: float, tokens: float | None = None) -> TeacherEstimate:
        censored = (self.file.diagnostics.model_extra or {}).get("censored")
        if censored or "low" not in self.c:
            return TeacherEstimate(estimate=self.c["r"] * student_params, censored=censored)
        return TeacherEstimate(estimate=self.c["r"] * student_params, low=self.c["low"] * student_params,
                               high=self.c["high"] * student_params)

    def predict_metric(self, student_params: float, teacher_params: float, tokens: float | None = None) -> float | None:
        if not (self.file.diagnostics.model_extra or {}).get("predicts"):
            return None
        gap = math.log(teacher_params / (self.c["r"] * student_params))
        return 2.0 + 50.0 / student_params ** 0.3 + 0.05 * gap ** 2 + 400.0 / tokens ** 0.28


def make_file(**changes) -> LawFile:
    fields = {"law": TEST_FAMILY, "coefficients": {"r": 2.5, "low": 2.0, "high": 3.0},
              "student_range": [70e6, 1.4e9], "n_runs": 40, "provenance": "test law"}
    return LawFile(**{**fields, **changes})


def make_law(**changes) -> RatioTestLaw:
    return law_from_file(make_file(**changes))


# Round ladder: 0.5B is smaller than the student; 2B and 3B lie inside [2B, 3B]; 8B above.
ROUND = [LadderModel(name=f"m-{n}b", params=int(n * 1e9), params_nonembed=int(n * 0.8e9)) for n in (0.5, 2, 3, 8)]
S, D = 1e9, 20e9


def run_flops(student: float, teacher: float, tokens: float) -> float:
    return 6 * student * tokens + 2 * teacher * tokens


def strategy(rec: Recommendation, name: str):
    return next(s for s in rec.strategies if s.name == name)


def test_optimal_teacher_and_interval_from_the_law():
    rec = recommend(int(S), law=make_law(), ladder=ROUND)
    assert (rec.teacher_params, rec.teacher_params_low, rec.teacher_params_high) == (2_500_000_000, 2_000_000_000, 3_000_000_000)
    assert rec.law.name == TEST_FAMILY and rec.law.fitted_range == [70_000_000, 1_400_000_000]
    assert rec.censored is None and rec.by_law[0].warnings == []
    assert [a.law.source for a in rec.by_law] == ["python object", "zhang2023", "busbridge2025"]


def test_snapping_prefers_the_closest_model_inside_the_interval():
    rec = recommend("1B", law=make_law(), ladder=ROUND)
    assert [n.name for n in rec.nearest] == ["m-3b", "m-2b", "m-8b"]  # 0.5B cannot teach a 1B student
    assert [n.inside_interval for n in rec.nearest] == [True, True, False]
    assert [n.ratio for n in rec.nearest] == [3.0, 2.0, 8.0]
    assert rec.preferred == "m-3b"  # |ln(3/2.5)| = 0.18 < |ln(2/2.5)| = 0.22
    assert "m-2b" in rec.preferred_reason and "log scale" in rec.preferred_reason


def test_snapping_on_the_pythia_ladder():
    rec = recommend("1.3B", law=make_law(student_range=None))
    pythia = {m.name: m.params for m in KNOWN_LADDERS["pythia"]}
    assert rec.preferred == "pythia-2.8b" and rec.nearest[0].params == pythia["pythia-2.8b"]
    inside = [n.name for n in rec.nearest if n.inside_interval]
    assert inside == ["pythia-2.8b"]  # interval 2.6B-3.9B
    assert {n.name for n in rec.nearest} == {"pythia-1.4b", "pythia-2.8b", "pythia-6.9b"}


def test_ladder_with_nothing_inside_the_interval():
    ladder = [LadderModel(name="small", params=1_500_000_000), LadderModel(name="big", params=5_000_000_000)]
    rec = recommend("1B", law=make_law(), ladder=ladder)
    assert [n.inside_interval for n in rec.nearest] == [False, False]
    assert rec.preferred == "small"  # ln(2.5/1.5) = 0.51 < ln(5/2.5) = 0.69
    assert any(w.startswith("no ladder model inside the interval (2B–3B total); nearest: small") for w in rec.warnings)


def test_point_estimate_beyond_the_end_of_the_ladder():
    rec = recommend("1.3B", law=make_law(coefficients={"r": 2.5}, student_range=None), ladder="gpt2")
    assert [n.name for n in rec.nearest] == ["gpt2-xl"] and rec.nearest[0].inside_interval is None
    assert any(w.startswith("the law's teacher (3.25B total) is larger than every gpt2 model; nearest: gpt2-xl")
               for w in rec.warnings)
    rec = recommend("1B", law=make_law(coefficients={"r": 1.5}), ladder=ROUND)
    assert any(w.startswith("the law's teacher (1.5B total) is smaller than every ladder model larger than the student; "
                            "nearest: m-2b") for w in rec.warnings)


def test_ladder_with_no_model_larger_than_the_student():
    rec = recommend("3B", law=make_law(student_range=None), ladder="gpt2")
    assert rec.nearest == [] and rec.preferred is None
    assert [s.name for s in rec.strategies] == ["law_teacher"]
    assert strategy(rec, "law_teacher").flops == run_flops(3e9, 7.5e9, 60e9)
    assert any("no gpt2 model is larger than the student" in w for w in rec.warnings)


def test_law_teacher_and_brute_force_costs():
    rec = recommend("1B", law=make_law(), ladder=ROUND)
    assert rec.tokens == 20_000_000_000 and "20 tokens per student parameter" in rec.tokens_rule
    law_run = strategy(rec, "law_teacher")
    assert (law_run.runs, law_run.flops) == (1, 2.4e20)  # 6·1e9·20e9 + 2·3e9·20e9
    search = strategy(rec, "brute_force_search")
    assert search.runs == 3 and [s.teacher for s in search.steps] == ["m-2b", "m-3b", "m-8b"]
    assert search.flops == pytest.approx(8.8e20, rel=1e-12)  # 3·1.2e20 + 2·20e9·(2+3+8)e9


def test_given_tokens_replace_the_default():
    rec = recommend("1B", law=make_law(), ladder=ROUND, tokens="1e10")
    assert rec.tokens == 10_000_000_000 and rec.tokens_rule == "given"
    assert strategy(rec, "law_teacher").flops == 1.2e20  # 6e19 + 6e19


def test_teacher_assistant_chain_runs_and_flops():
    rec = recommend("1B", law=make_law(), ladder=ROUND, tokens="1e10", available_teacher="10B")
    chain = strategy(rec, "teacher_assistant_chain")
    # 10B lies above 3B, so assistant 1 = 2.5B; 10B lies above 2.5B's interval (5B-7.5B),
    # so assistant 2 = 6.25B; the next assistant (15.6B) would exceed the 10B teacher.
    assert [(s.teacher_params, s.student_params) for s in chain.steps] == [
        (10_000_000_000, 6_250_000_000), (6_250_000_000, 2_500_000_000), (2_500_000_000, 1_000_000_000)]
    assert [s.flops for s in chain.steps] == pytest.approx([5.75e20, 2.75e20, 1.1e20], rel=1e-12)
    assert (chain.runs, chain.extra_runs) == (3, 2)
    assert chain.flops == pytest.approx(9.6e20, rel=1e-12) and chain.extra_flops == pytest.approx(8.5e20, rel=1e-12)
    direct = strategy(rec, "available_teacher_direct")
    assert (direct.runs, direct.flops) == (1, 2.6e20)  # 6e19 + 2·10e9·1e10


def test_assistant_chain_stops_when_another_assistant_would_not_help():
    rec = recommend("1B", law=make_law(), ladder=ROUND, tokens="1e10", available_teacher="20B")
    chain = strategy(rec, "teacher_assistant_chain")
    # 20B lies above 6.25B's interval (12.5B-18.75B), but a 15.6B assistant would leave the
    # 20B -> 15.6B hop further from its optimum (39B) than 20B -> 6.25B is from 15.6B.
    assert [s.student_params for s in chain.steps] == [6_250_000_000, 2_500_000_000, 1_000_000_000]
    assert chain.flops == pytest.approx(7.75e20 + 2.75e20 + 1.1e20, rel=1e-12)


def test_teacher_just_above_a_point_estimate_needs_no_assistant():
    rec = recommend("1B", law=make_law(coefficients={"r": 2.5}), ladder=ROUND, available_teacher="2.8B")
    assert "teacher_assistant_chain" not in [s.name for s in rec.strategies]


def test_available_teacher_inside_the_interval_needs_no_assistant():
    rec = recommend("1B", law=make_law(), ladder=ROUND, available_teacher="2.8B")
    assert "teacher_assistant_chain" not in [s.name for s in rec.strategies]
    assert any("distil from it directly" in n for n in rec.notes)


def test_available_teacher_below_the_optimum_is_noted():
    rec = recommend("1B", law=make_law(), ladder=ROUND, available_teacher="1.5B")
    assert [s.name for s in rec.strategies][-1] == "available_teacher_direct"
    assert any("below the law's optimal teacher" in n for n in rec.notes)


def test_budget_marks_strategies_that_fit():
    rec = recommend("1B", law=make_law(), ladder=ROUND, budget="5e20")
    assert {s.name: s.fits_budget for s in rec.strategies} == {"law_teacher": True, "brute_force_search": False}
    assert rec.budget_best is None  # a ratio law cannot predict the student's quality
    assert any("cannot predict student quality" in n for n in rec.notes)


def test_budget_best_student_with_a_law_that_predicts_quality():
    law = make_law(diagnostics={"predicts": True})
    budget = 1e21
    rec = recommend("1B", law=law, ladder=ROUND, budget=budget)
    best = rec.budget_best
    assert best is not None and best.metric == "eval_loss"
    assert best.flops == run_flops(S, best.teacher_params, best.tokens) <= budget
    assert run_flops(S, best.teacher_params, best.tokens + 1) > budget  # the whole budget is spent
    assert best.expected_metric == law.predict_metric(S, best.teacher_params, best.tokens)
    for teacher in (2.5e9, 2e9, 3e9, 8e9):  # no other teacher does better with the same budget
        tokens = budget // (6 * S + 2 * teacher)
        assert law.predict_metric(S, teacher, tokens) >= best.expected_metric
    assert strategy(rec, "law_teacher").expected_metric == law.predict_metric(S, 3e9, D)


def test_with_the_published_distillation_scaling_law():
    from capgap.laws.dsl import published_law  # the one family that predicts the student's loss

    law = published_law()
    rec = recommend("1B", law=law, ladder="pythia", budget=1e21, size_measure="nonembed")
    assert rec.size_measure == "nonembed"  # the dsl law counts non-embedding parameters
    pythia = {m.name: m.params_nonembed for m in KNOWN_LADDERS["pythia"]}
    assert all(n.params == pythia[n.name] for n in rec.nearest)
    law_run = strategy(rec, "law_teacher")
    assert law_run.expected_metric == law.predict_metric(1e9, pythia[rec.preferred], 20e9)
    assert rec.budget_best is not None and rec.budget_best.flops <= 1e21
    assert rec.budget_best.expected_metric <= law_run.expected_metric  # the whole budget buys more tokens


def test_extrapolation_warning_outside_the_fitted_range():
    assert not any(w.startswith("extrapolating") for w in recommend("1B", law=make_law(), ladder=ROUND).warnings)
    for student in ("3B", "50M"):
        rec = recommend(student, law=make_law(), ladder=ROUND)
        assert any(w.startswith("extrapolating: law fitted on 70M–1.4B total students") for w in rec.warnings)


def test_unfitted_reference_law_is_flagged():
    rec = recommend("1B", law=make_file(fitted=False, student_range=None), ladder=ROUND)  # a LawFile works too
    assert rec.law.fitted is False
    assert any(w.startswith("unfitted reference law") for w in rec.warnings)


def test_censored_estimate_is_a_bound():
    law = make_law(diagnostics={"censored": "at_least"})
    rec = recommend("1B", law=law, ladder=ROUND)
    assert rec.censored == "at_least" and rec.teacher_params_high is None
    assert any(w.startswith("censored estimate") and "at least 2.5B" in w for w in rec.warnings)
    assert {n.name: n.inside_interval for n in rec.nearest} == {"m-2b": False, "m-3b": True, "m-8b": True}


def test_law_without_interval_gives_no_inside_flag():
    rec = recommend("1B", law=make_law(coefficients={"r": 2.5}), ladder=ROUND)
    assert rec.teacher_params_low is None and [n.inside_interval for n in rec.nearest] == [None, None]
    assert rec.preferred == "m-3b" and not any("inside the interval" in w for w in rec.warnings)


def test_nonembed_law_uses_nonembed_ladder_counts():
    law = make_law(size_measure="nonembed", student_range=None)
    rec = recommend("1B", law=law, ladder=ROUND, size_measure="nonembed")
    assert rec.size_measure == "nonembed" and [n.params for n in rec.nearest] == [2_400_000_000, 1_600_000_000, 6_400_000_000]
    # a total count given to a non-embedding law is converted, and the answer says how
    total = recommend("1.2B", law=law, ladder=ROUND, size_measure="total")
    assert total.given_measure == "total" and total.student_params < 1_200_000_000
    assert any("Pythia-like embedding share" in n for n in total.by_law[0].notes)


def test_nonembed_law_needs_nonembed_counts_in_the_ladder():
    ladder = [LadderModel(name="big", params=3_000_000_000)]
    with pytest.raises(InputError, match="gives none for big; add a params_nonembed column"):
        recommend("1B", law=make_law(size_measure="nonembed"), ladder=ladder)


@pytest.fixture
def law_file(tmp_path) -> Path:
    path = tmp_path / "law.json"
    path.write_text(make_law().file.model_dump_json())
    return path


def test_cli_json_has_the_documented_keys(law_file, capsys):
    assert main(["recommend", "--student", "1.3B", "--law", str(law_file), "--available-teacher", "12B",
                 "--budget", "1e22", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"student_params", "teacher_params", "teacher_params_low", "teacher_params_high", "law", "nearest",
            "strategies", "warnings"} <= set(out)
    assert set(out["law"]) >= {"name", "source", "fitted_range"} and out["law"]["source"] == str(law_file)
    assert all(set(n) >= {"name", "params", "ratio", "inside_interval"} for n in out["nearest"])
    assert all(set(s) >= {"name", "runs", "flops"} for s in out["strategies"])
    assert out["student_params"] == 1_300_000_000 and out["teacher_params"] == 3_250_000_000


def test_cli_text_output(law_file, capsys):
    assert main(["recommend", "--student", "1.3B", "--law", str(law_file), "--explain"]) == 0
    out = capsys.readouterr().out
    assert "optimal teacher: 3.25B total (90% interval 2.6B–3.9B)" in out
    assert "* pythia-2.8b" in out and "brute_force_search" in out and "6*N_S*D" in out


def test_python_api_is_exported_from_the_package():
    assert "recommend" in capgap.__all__ and callable(capgap.recommend)
    assert isinstance(capgap.recommend("1B", law=make_law(), ladder=ROUND), Recommendation)


NO_HEAVY_IMPORTS = """
import sys
import capgap
from capgap.laws.base import LawFile, TeacherEstimate, register_law

@register_law("subprocess_ratio")
class Law:
    name = "subprocess_ratio"
    def __init__(self, file): self.file = file
    def optimal_teacher(self, s, tokens=None): return TeacherEstimate(estimate=2.5 * s, low=2 * s, high=3 * s)
    def predict_metric(self, s, t, tokens=None): return None

law = sys.modules["capgap.laws.base"].law_from_file(LawFile(law="subprocess_ratio", coefficients={}))
rec = capgap.recommend("1.3B", law=law, ladder="pythia", available_teacher="12B", budget="1e21")
from capgap.commands.cli import main
assert main(["recommend", "--student", "1.3B", "--law", sys.argv[1], "--json"]) == 0
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "transformers", "pandas", "scipy", "matplotlib"})
assert not heavy, heavy
"""


def test_recommend_imports_neither_torch_nor_transformers(tmp_path):
    path = tmp_path / "law.json"
    path.write_text(LawFile(law="subprocess_ratio", coefficients={}).model_dump_json())
    done = subprocess.run([sys.executable, "-c", NO_HEAVY_IMPORTS, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def bad_inputs(tmp_path: Path, law_file: Path) -> dict[str, tuple[list[str], str]]:
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "notalaw.json").write_text('{"law": "ratio"}')
    (tmp_path / "unknown.json").write_text('{"law": "no_such_family", "coefficients": {}}')
    (tmp_path / "no_ratio.json").write_text('{"law": "ratio", "coefficients": {"slope": 2.5}}')
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00\x81")
    (tmp_path / "ladder.csv").write_text("model,size\nbig,7B\n")
    law = str(law_file)
    return {  # case -> (arguments, words the message must contain)
        "bad size": (["--student", "1.3X", "--law", law], "'1.3X' is not a size"),
        "zero size": (["--student", "0", "--law", law], "must be a positive count"),
        "negative size": (["--student", "-1", "--law", law], "size must be positive"),
        "negative suffixed size": (["--student=-1B", "--law", law], "size must be positive"),
        "negative size as a separate word": (["--student", "-7B"], "size must be positive"),
        "law is a directory": (["--student", "1B", "--law", str(tmp_path)], "is a directory"),
        "student beyond every law": (["--student", "100T"], "7,600x the largest student any law here was fitted on"),
        "student under 1k": (["--student", "999"], "under 1k parameters"),
        "tokens too few per parameter": (["--student", "1B", "--tokens", "20"], "2e-08 per student parameter"),
        "tokens too many per parameter": (["--student", "1M", "--tokens", "1T"], "1e+06 per student parameter"),
        "missing law": (["--student", "1B", "--law", str(tmp_path / "nope.json")], "law file not found"),
        "broken law": (["--student", "1B", "--law", str(tmp_path / "broken.json")], "not valid JSON"),
        "not a law": (["--student", "1B", "--law", str(tmp_path / "notalaw.json")], "coefficients"),
        "unknown family": (["--student", "1B", "--law", str(tmp_path / "unknown.json")], "is unknown; accepted"),
        "law lacks coefficient": (["--student", "1B", "--law", str(tmp_path / "no_ratio.json")], "lacks coefficient"),
        "unreadable law": (["--student", "1B", "--law", str(tmp_path / "binary.json")], "cannot read"),
        "unknown ladder": (["--student", "1B", "--law", law, "--ladder", "llama"], "unknown ladder 'llama'"),
        "ladder columns": (["--student", "1B", "--law", law, "--ladder", str(tmp_path / "ladder.csv")], "name,params"),
        "small teacher": (["--student", "1B", "--law", law, "--available-teacher", "500M"], "smaller than the student"),
        "zero tokens": (["--student", "1B", "--law", law, "--tokens", "0"], "tokens"),
        "bad budget": (["--student", "1B", "--law", law, "--budget", "lots"], "budget"),
        "bad size flag": (["--student", "1B", "--law", law, "--size", "embed"], "invalid choice"),
    }


@pytest.mark.parametrize("case", ["bad size", "zero size", "negative size", "negative suffixed size",
                                  "negative size as a separate word", "law is a directory", "student beyond every law",
                                  "student under 1k", "tokens too few per parameter", "tokens too many per parameter",
                                  "missing law", "broken law", "not a law",
                                  "unknown family", "law lacks coefficient", "unreadable law", "unknown ladder", "ladder columns",
                                  "small teacher", "zero tokens", "bad budget", "bad size flag"])
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, law_file, capsys):
    args, words = bad_inputs(tmp_path, law_file)[case]
    try:
        status = main(["recommend", *args])
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    captured = capsys.readouterr()
    assert status == 2 and captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("capgap: error:"), captured.err
    assert words in captured.err


def test_bad_input_from_the_real_command_has_no_traceback(tmp_path):
    (tmp_path / "ladder.csv").write_text("model,size\nbig,7B\n")
    for args in (["--student", "1.3X"], ["--student", "1B", "--law", str(tmp_path / "missing.json")],
                 ["--student", "1B", "--ladder", "llama"], ["--student", "1B", "--ladder", str(tmp_path / "ladder.csv")],
                 ["--student", "1B", "--available-teacher", "100M"]):
        done = subprocess.run([sys.executable, "-m", "capgap", "recommend", *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1


def test_cpu_demo_law_is_a_named_example_and_warns_when_extrapolating():
    document = json.loads(shipped_law_path("cpu-demo").read_text())
    r = document["coefficients"]["r"]
    rec = recommend("1.3B", law="cpu-demo")
    assert rec.law.source == "cpu-demo" and rec.law.name == "ratio" and rec.law.fitted is True
    assert "pipeline demonstration" in rec.law.label
    assert rec.teacher_params == round(r * 1.3e9)
    assert rec.teacher_params_low < rec.teacher_params < rec.teacher_params_high
    # far outside first, then the regime: the size and the tokens per parameter lie outside the CPU runs
    assert rec.warnings[0].startswith("far outside the law: the student (1.3B total) is 8,700x the largest")
    assert rec.warnings[1].startswith("extrapolating: law fitted on 30k–150k total students")
    assert rec.warnings[2].startswith("law fitted at 1.68–8.39 tokens/param; this student gets 20")
    assert [a.law.source for a in rec.by_law] == ["cpu-demo"]  # a shipped law by name answers alone
    lo, hi = document["student_range"]
    inside = recommend(round((lo * hi) ** 0.5), law="cpu-demo", ladder="none", tokens=round((lo * hi) ** 0.5 * 4))
    assert not any(w.startswith(("extrapolating", "law fitted at")) for w in inside.by_law[0].warnings)


def test_reference_is_zhang_et_al_unfitted_reading():
    rec = recommend("1.3B", law="reference")
    assert rec.law.source == "zhang2023" and rec.law.fitted is False
    assert rec.teacher_params == round(2.5 * 1.3e9) and rec.teacher_params_low is None
    assert any(n.startswith("unfitted reference law") for n in rec.notes)  # its solidity is printed beside it


def test_default_is_both_published_laws_side_by_side():
    rec = recommend("1.3B")
    zhang, busbridge = rec.by_law
    assert (zhang.law.source, busbridge.law.source) == ("zhang2023", "busbridge2025")
    assert rec.law == zhang.law and rec.teacher_params == zhang.teacher_params == round(2.5 * 1.3e9)
    assert zhang.law.size_measure == "total" and busbridge.law.size_measure == "nonembed"
    assert busbridge.student_params < 1.3e9 and "embedding share" in busbridge.size_rule  # converted, and said so
    assert busbridge.applies.inside is False  # Busbridge's students are trained from scratch; this one is pruned
    assert rec.warnings[0] == "busbridge2025: law fitted on scratch students; this student is pruned"
    assert zhang.expected_metric is None and zhang.near_miss is None and zhang.distillation_pays is None
    assert busbridge.expected_metric is not None and busbridge.near_miss is not None
    scratch = recommend("1.3B", init="scratch")
    assert [a.law.source for a in scratch.by_law] == ["busbridge2025", "zhang2023"]
    assert scratch.size_measure == "nonembed" and scratch.by_law[0].applies.inside is not False


def test_tokens_reach_the_token_aware_law():
    few, many = (recommend("1B", size_measure="nonembed", init="scratch", tokens=n).teacher_params for n in ("20B", "320B"))
    assert few / 1e9 == pytest.approx(81, rel=0.1) and many / 1e9 == pytest.approx(8.5, rel=0.1)  # reference/README.md


def test_near_miss_band_and_penalties_from_the_predicting_law():
    from capgap.laws.dsl import published_law

    law = published_law()
    rec = recommend("1B", size_measure="nonembed", init="scratch", tokens="20B", tolerance=0.01)
    answer = rec.by_law[0]
    band = answer.near_miss
    assert band.low < answer.teacher_params < band.high
    best = law.predict_metric(1e9, answer.teacher_params, 20e9)
    for edge in (band.low, band.high):  # the predicted student at each edge is the tolerance worse
        assert law.predict_metric(1e9, edge, 20e9) - best == pytest.approx(0.01, abs=1e-4)
    for n in answer.nearest:
        assert n.penalty == pytest.approx(law.predict_metric(1e9, n.params, 20e9) - best, abs=1e-12)
        assert (n.penalty <= 0.01 + 1e-9) == (band.low <= n.params <= band.high)


def test_teacher_cost_scenarios_price_the_law_teacher():
    s, t, d = 1e9, 3e9, 20e9
    flops = {cost: strategy(recommend("1B", law=make_law(), ladder=ROUND, teacher_cost=cost), "law_teacher").flops
             for cost in ("none", "inference", "pretraining", "both")}
    assert flops == pytest.approx({"none": 6 * s * d, "inference": 6 * s * d + 2 * t * d,
                                   "pretraining": 6 * s * d + 6 * t * 20 * t,
                                   "both": 6 * s * d + 2 * t * d + 6 * t * 20 * t}, rel=1e-12)
    assert "teacher pretraining" in recommend("1B", law=make_law(), ladder=ROUND, teacher_cost="both").flops_rule


def brute_force_compute_optimal(student: float, budget: float) -> tuple[float, float, float]:
    """An independent check: a dense grid over teacher size and the teacher's share of the budget."""
    import numpy as np

    from capgap.laws.dsl import PUBLISHED, student_loss, supervised_loss

    teacher = np.geomspace(student / 10, student * 100, 1201)[:, None]
    share = np.linspace(0.0005, 0.9995, 2000)[None, :]
    teacher_tokens = share * budget / (6 * teacher)
    distill_tokens = (1 - share) * budget / (6 * student + 2 * teacher)
    loss = student_loss(PUBLISHED, student, distill_tokens, supervised_loss(PUBLISHED, teacher, teacher_tokens))
    i, _ = np.unravel_index(np.argmin(loss), loss.shape)
    return float(teacher[i, 0]), float(loss.min()), float(supervised_loss(PUBLISHED, student, budget / (6 * student)))


def test_compute_optimal_distillation_with_the_teachers_pretraining_counted():
    rec = recommend("1B", size_measure="nonembed", init="scratch", budget="1e22", teacher_cost="both")
    answer = rec.by_law[0]
    teacher, distilled, supervised = brute_force_compute_optimal(1e9, 1e22)
    optimum = answer.compute_optimal
    assert optimum.teacher_params == pytest.approx(teacher, rel=0.01)
    assert optimum.distilled_loss == pytest.approx(distilled, abs=1e-5)
    assert optimum.supervised_loss == pytest.approx(supervised, abs=1e-9)
    # the published figures (../shared/reference/README.md): ≈2.9× the student, 2.130 supervised vs 2.160 distilled
    assert teacher / 1e9 == pytest.approx(2.9, rel=0.05)
    assert (round(supervised, 3), round(distilled, 3)) == (2.130, 2.160)
    assert answer.distillation_pays is False and answer.teacher_params == round(optimum.teacher_params)
    spent = 6 * 1e9 * optimum.distill_tokens + 2 * optimum.teacher_params * optimum.distill_tokens \
        + 6 * optimum.teacher_params * optimum.teacher_tokens
    assert spent == pytest.approx(1e22, rel=1e-9)  # the whole budget, nothing more
    assert answer.teacher_params_low is None and answer.teacher_params_high is None


def test_regime_warnings_come_first_then_the_law_files_own():
    file = make_file(regime={"student_params": [1e8, 5e8], "tokens_per_param": [18, 22], "student_init": ["pruned"]},
                     diagnostics={"warnings": ["r at its upper bound"]}, student_range=None)
    rec = recommend("1B", law=file, ladder=ROUND, tokens="5x", init="scratch")
    assert rec.by_law[0].warnings[:4] == [
        "extrapolating: law fitted on 100M–500M total students; the student (1B total) lies outside",
        "law fitted at 18–22 tokens/param; this student gets 5",
        "law fitted on pruned students; this student is scratch",
        "law file: r at its upper bound"]
    assert rec.warnings[:4] == rec.by_law[0].warnings[:4] and rec.by_law[0].applies.inside is False
    old = recommend("1B", law=make_file(student_range=None), ladder=ROUND).by_law[0]
    assert old.applies.inside is None and "regime unknown" in old.applies.reasons[-1]


def test_a_law_fitted_on_runs_of_unknown_init_does_not_call_the_student_a_mismatch():
    # A CSV table without student_init imports as "unknown": that is no evidence the student differs from the runs.
    file = make_file(regime={"student_params": [7e8, 1.4e9], "student_init": ["unknown"]}, student_range=None)
    answer = recommend("1B", law=file, ladder=ROUND).by_law[0]
    assert not any("this student is" in w for w in answer.warnings)
    assert answer.applies.inside is None and "regime unknown for" in answer.applies.reasons[-1]
    assert "student init" in answer.applies.reasons[-1]


def text_of(capsys, *args: str) -> list[str]:
    assert main(["recommend", *args]) == 0
    return capsys.readouterr().out.splitlines()


def test_the_answer_comes_first_for_a_pruned_student(capsys):
    lines = text_of(capsys, "--student", "160M")
    assert lines[0] == ("160M total student (pruned): distil from pythia-410m (405M total, 2.5x): Zhang et al.'s law, "
                        "the one")
    assert lines[1] == "    for pruned students."
    assert lines[2].startswith("Scratch students: pythia-6.9b by Busbridge et al. (ideal 8.41B nonembed at 3.2B tokens;")
    assert len(lines) <= 12 and all(len(line) <= 100 for line in lines)
    assert not any("pythia-160m" in line for line in lines)  # a 1.01x model is the student's own size, not a teacher
    assert lines[-1].startswith("  more: --explain")


def test_the_answer_comes_first_for_a_scratch_student_with_tokens(capsys):
    lines = text_of(capsys, "--student", "1B", "--init", "scratch", "--tokens", "20x")
    assert " ".join(lines[:2]).replace("     ", " ") == (
        "1B total student (scratch, 20B tokens): distil from pythia-12b (11.3B nonembed / 11.8B total, 12x): "
        "Busbridge et al.'s law, the one for scratch students.")
    assert lines[2] == "Pruned students: pythia-2.8b by Zhang et al. (ideal 2.5B total, 2.5x the student)."
    # every size says its measure: the two laws count differently
    assert "law's teacher 56.3B nonembed, no interval" in lines[3]


def test_a_budget_answer_says_what_it_answers(capsys):
    lines = text_of(capsys, "--student", "1.3B", "--init", "scratch", "--teacher-cost", "pretraining", "--budget", "1e22")
    first = " ".join(line.strip() for line in lines[:4])
    assert first.startswith("1.3B total student (scratch), 1e22 FLOPs including the teacher's pretraining: train the "
                            "student alone: distillation does not pay (2.119 eval_loss alone vs 2.134 at best distilled: "
                            "a 6.64B nonembed teacher (nearest: pythia-6.9b) pretrained on 114B tokens, the student "
                            "distilled on 833B)")
    assert "  optimal teacher at the default tokens (26B): 75.2B nonembed" in lines


def test_far_outside_the_law_the_warning_comes_first(capsys):
    lines = text_of(capsys, "--student", "1.3B", "--law", "cpu-demo")
    assert lines[0].startswith("warning: far outside the law: the student (1.3B total) is 8,700x the largest")
    assert lines[2].startswith("1.3B student (pruned): distil from pythia-2.8b (2.78B, 2.1x): the CPU demo law")


def test_explain_holds_every_law_in_full(capsys):
    lines = text_of(capsys, "--student", "1.3B", "--explain")
    assert lines.index("[headline] Zhang et al. (law of capacity gap): zhang2023") > lines.index("")
    assert any(line.startswith("[also] Busbridge et al.") for line in lines)
    assert any(line.startswith("strategies by the headline law") for line in lines)
    assert all(len(line) <= 100 for line in lines)


def test_a_shipped_law_by_name_answers_alone_and_student_sizes_are_total():
    alone = recommend("1B", law="busbridge2025")
    both = recommend("1B")
    assert [a.law.source for a in alone.by_law] == ["busbridge2025"] and alone.init == "scratch"
    assert alone.given_measure == "total"  # the same flag means the same thing whatever the law
    assert alone.teacher_params == both.by_law[1].teacher_params
    assert alone.student_params == both.by_law[1].student_params < 1e9


def test_tokens_per_parameter_form_and_the_token_range_check():
    rec = recommend("1B", tokens="20x")
    assert rec.tokens == 20_000_000_000 and rec.tokens_rule == "given: 20 per student parameter"
    busbridge = rec.by_law[1]
    assert "tokens inside the law's a few billion (taken as 2B) to 512B" in busbridge.applies.reasons
    many = recommend("1B", tokens="1000x").by_law[1]  # 1T tokens: beyond the law's 512B
    assert any(w.startswith("law fitted on a few billion (taken as 2B) to 512B distillation tokens") for w in many.warnings)


def test_a_law_fitted_on_runs_without_tokens_is_asked_without(tmp_path):
    from capgap.laws.base import StudentOptimum

    optimum = StudentOptimum(family="resnet", student_params=1_000_000, teacher_params=2.5e6)
    file = make_file(optima=[optimum], student_range=[1e5, 1e7])
    rec = recommend("1M", law=file, ladder="none")
    head, busbridge = rec.by_law[0], rec.by_law[2]
    assert head.tokens_per_param is None and rec.tokens_rule.startswith("unknown")
    assert any(n.startswith("tokens unknown") for n in head.notes)
    # the published laws say the student is not a language model, and the embedding share is a warning
    assert busbridge.applies.inside is False
    assert any(w.startswith("law fitted on transformer language models; the runs of python object are resnet models")
               for w in busbridge.warnings)
    assert any("an embedding share has no meaning for these models" in w for w in busbridge.warnings)


def test_brute_force_names_one_candidate_once():
    rec = recommend("1.3B", ladder="gpt2", law="zhang2023")
    search = strategy(rec, "brute_force_search")
    assert search.description == "distil from the one gpt2 model larger than the student (gpt2-xl)"


def test_plots_do_not_import_the_recommender():
    code = "import sys, capgap.plots.figures; assert not any(m.startswith('capgap.recommender.answer') for m in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_shipped_busbridge_law_is_the_published_constants():
    from capgap.laws.dsl import PUBLISHED, published_law

    shipped = json.loads(shipped_law_path("busbridge2025").read_text())
    assert shipped["coefficients"] == PUBLISHED and shipped["size_measure"] == "nonembed"
    law, _ = capgap.laws.files.resolve_law("busbridge2025")
    assert law.optimal_teacher(1e9).estimate == pytest.approx(published_law().optimal_teacher(1e9).estimate, rel=1e-12)


def test_evidence_sets_observations_beside_each_law():
    from capgap.recommender.evidence import evidence

    found = {(c.study, c.student, c.metric): {v.law: v for v in c.verdicts} for c in evidence()}
    minima = found[("MiniMA ablation", "MiniMA-3B", "mmlu_5shot")]
    assert minima["zhang2023"].verdict == "agrees" and minima["zhang2023"].predicted == "LLaMA2-7B"
    assert minima["busbridge2025"].verdict == "cannot say" and "too shallow" in minima["busbridge2025"].why
    assert found[("Minitron", "Minitron-4B", "retraining_quality")]["zhang2023"].verdict == "disagrees"
    assert {v.verdict for v in found[("TAKD", "plainCNN-2", "cifar100_top1")].values()} == {"cannot say"}
    assert not any("seed" in c.source for c in evidence())  # citations, not internal source tags
    assert evidence()[0].source.startswith("Zhang et al., arXiv 2311.07052 (MiniMA), Table 4")


def test_version_and_a_closed_pipe(run_cli):
    done = run_cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"capgap {capgap.__version__}"
    pipe = subprocess.Popen([sys.executable, "-m", "capgap", "recommend", "--student", "1.3B"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pipe.stdout.close()  # the reader went away before the first line, as `| head -0` would
    assert pipe.wait(timeout=120) == 141 and pipe.stderr.read() == b""


def test_default_law_from_a_cold_process_imports_no_torch():
    code = ("import capgap, sys; capgap.recommend('1.3B'); "
            "assert not {'torch', 'transformers'} & set(sys.modules), 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_default_law_json_from_the_real_command():
    done = subprocess.run([sys.executable, "-m", "capgap", "recommend", "--student", "1.3B", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    out = json.loads(done.stdout)
    assert out["law"]["source"] == "zhang2023" and out["teacher_params"] == round(2.5 * 1.3e9)
    assert [entry["law"]["source"] for entry in out["by_law"]] == ["zhang2023", "busbridge2025"]
    for entry in out["by_law"]:
        assert {"law", "teacher_params", "teacher_params_low", "teacher_params_high", "applies", "expected_metric",
                "distillation_pays", "notes"} <= set(entry)
    assert out["strategies"][0]["name"] == "law_teacher" and out["strategies"][0]["runs"] == 1


def test_with_a_ratio_law_fitted_on_synthetic_runs(tmp_path):
    from capgap.laws.base import save_law
    from capgap.runs.synthetic import synthetic_runs

    path = tmp_path / "fitted.json"
    save_law(capgap.fit_law(synthetic_runs(ratio=2.5, seed=1), law="ratio", bootstrap=30), path)
    rec = recommend("200M", law=str(path), ladder="gpt2")
    assert rec.law.fitted and rec.law.source == str(path)
    assert rec.teacher_params_low < rec.teacher_params < rec.teacher_params_high
    assert rec.teacher_params == pytest.approx(2.5 * 200e6, rel=0.1)  # the planted ratio
    assert not any(w.startswith("extrapolating") for w in rec.warnings)  # synthetic students span 20M-500M
    assert any(w.startswith("extrapolating") for w in recommend("1.3B", law=str(path)).warnings)


def test_an_exact_fits_bracket_is_not_called_a_90_percent_interval():
    # Three runs of one student, the middle teacher best: the fit is exact, and its low-high only the measured
    # teachers either side of the best. recommend used to print it as a "90% interval".
    from capgap.fit.law_fit import fit_law
    from capgap.recommender.text import format_recommendation
    from capgap.runs.synthetic import synthetic_runs

    runs = synthetic_runs(ratio=2.5, students=[1e8], multiples=(1.5, 2.5, 4.0), noise=0.0005, seed=3,
                          with_teacher_loss=False)
    exact = recommend("100M", law=fit_law(runs, law="ratio", bootstrap=200), ladder="pythia")
    assert exact.bracket and exact.by_law[0].bracket
    text = " ".join(format_recommendation(exact, explain=True))
    assert "no interval (an exact fit): the measured teachers either side of the best are" in text
    assert "90% interval" not in text
    noisy = synthetic_runs(ratio=2.5, students=[1e8], multiples=(1.5, 2.0, 2.5, 3.2, 4.0, 5.0), noise=0.002,
                           seed=3, with_teacher_loss=False)
    fitted = recommend("100M", law=fit_law(noisy, law="ratio", bootstrap=200), ladder="pythia")
    assert not fitted.bracket and "90% interval" in " ".join(format_recommendation(fitted))


def test_a_shipped_ladder_is_taken_by_name_as_plan_takes_it(capsys):
    from capgap.core.resources import data_path

    args = ["recommend", "--student", "100k", "--tokens", "250k", "--json"]
    assert main([*args, "--ladder", "shakespeare-study-ladder"]) == 0
    by_name = json.loads(capsys.readouterr().out)
    assert main([*args, "--ladder", str(data_path("runs", "shakespeare-study-ladder.csv"))]) == 0
    assert json.loads(capsys.readouterr().out) == by_name
    assert main([*args, "--ladder", "no-such-ladder"]) == 2
    assert "a shipped ladder's name (capgap data)" in capsys.readouterr().err
