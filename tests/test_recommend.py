"""capgap recommend: interval, ladder snapping, strategy costs, warnings, JSON, start-up, bad input.

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
from capgap.cli import main
from capgap.laws import default_law_path
from capgap.errors import InputError
from capgap.ladders import KNOWN_LADDERS, LadderModel
from capgap.laws.base import LawFile, TeacherEstimate, law_from_file, register_law
from capgap.recommend import Recommendation, recommend

TEST_FAMILY = "test_recommend_ratio"


@register_law(TEST_FAMILY)
class RatioTestLaw:
    """T* = r·S with interval [low·S, high·S]; optional censoring and metric prediction from the file."""

    name = TEST_FAMILY

    def __init__(self, file: LawFile) -> None:
        self.file = file
        self.c = file.coefficients

    def optimal_teacher(self, student_params: float, tokens: float | None = None) -> TeacherEstimate:
        censored = self.file.diagnostics.get("censored")
        if censored or "low" not in self.c:
            return TeacherEstimate(estimate=self.c["r"] * student_params, censored=censored)
        return TeacherEstimate(estimate=self.c["r"] * student_params, low=self.c["low"] * student_params,
                               high=self.c["high"] * student_params)

    def predict_metric(self, student_params: float, teacher_params: float, tokens: float | None = None) -> float | None:
        if not self.file.diagnostics.get("predicts"):
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
    assert rec.censored is None and rec.warnings == []


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
    assert any(w.startswith("no ladder model inside the interval (2B–3B); nearest: small") for w in rec.warnings)


def test_point_estimate_beyond_the_end_of_the_ladder():
    rec = recommend("1.3B", law=make_law(coefficients={"r": 2.5}, student_range=None), ladder="gpt2")
    assert [n.name for n in rec.nearest] == ["gpt2-xl"] and rec.nearest[0].inside_interval is None
    assert any(w.startswith("the law's teacher (3.25B) is larger than every gpt2 model; nearest: gpt2-xl")
               for w in rec.warnings)
    rec = recommend("1B", law=make_law(coefficients={"r": 1.5}), ladder=ROUND)
    assert any(w.startswith("the law's teacher (1.5B) is smaller than every ladder model larger than the student; "
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
    rec = recommend("1B", law=law, ladder="pythia", budget=1e21)
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
        assert any(w.startswith("extrapolating: law fitted on 70M–1.4B students") for w in rec.warnings)


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
    rec = recommend("1B", law=law, ladder=ROUND)
    assert rec.size_measure == "nonembed" and [n.params for n in rec.nearest] == [2_400_000_000, 1_600_000_000, 6_400_000_000]
    with pytest.raises(InputError, match="nonembed"):
        recommend("1B", law=law, ladder=ROUND, size_measure="total")


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
    assert main(["recommend", "--student", "1.3B", "--law", str(law_file)]) == 0
    out = capsys.readouterr().out
    assert "optimal teacher: 3.25B (90% interval 2.6B–3.9B)" in out
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
from capgap.cli import main
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
        "negative size": (["--student", "-1", "--law", law], "'-1' is not a size"),
        "negative suffixed size": (["--student=-1B", "--law", law], "'-1B' is not a size"),
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


@pytest.mark.parametrize("case", ["bad size", "zero size", "negative size", "negative suffixed size", "missing law", "broken law", "not a law",
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


def test_shipped_default_law_is_fitted_and_warns_when_extrapolating():
    document = json.loads(default_law_path().read_text())
    r, (low, high) = document["coefficients"]["r"], document["intervals"]["r"]
    rec = recommend("1.3B")
    assert rec.law.source == "default" and rec.law.name == "ratio" and rec.law.fitted is True
    assert rec.teacher_params == round(r * 1.3e9)
    assert rec.teacher_params_low < rec.teacher_params < rec.teacher_params_high
    # the interval of T*(1.3B) is the interval of r scaled by the student (one-parameter law)
    assert rec.teacher_params_low == pytest.approx(low * 1.3e9, rel=0.02)
    assert rec.teacher_params_high == pytest.approx(high * 1.3e9, rel=0.02)
    assert not any(w.startswith("unfitted reference law") for w in rec.warnings)
    lo, hi = document["student_range"]
    assert any(w.startswith("extrapolating") for w in rec.warnings)  # fitted on tiny CPU students
    inside = recommend(round((lo * hi) ** 0.5), ladder="none")
    assert not any(w.startswith("extrapolating") for w in inside.warnings)
    pythia = sorted(KNOWN_LADDERS["pythia"], key=lambda m: abs(math.log(m.params / (r * 1.3e9))))
    assert rec.preferred == pythia[0].name


def test_shipped_reference_law_is_the_unfitted_published_reading():
    rec = recommend("1.3B", law="reference")
    assert rec.law.source == "reference" and rec.law.fitted is False
    assert rec.teacher_params == round(2.5 * 1.3e9) and rec.teacher_params_low is None
    assert any(w.startswith("unfitted reference law") for w in rec.warnings)


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
    assert out["law"]["source"] == "default"
    assert out["teacher_params_low"] < out["teacher_params"] < out["teacher_params_high"]
    assert out["strategies"][0]["name"] == "law_teacher" and out["strategies"][0]["runs"] == 1


def test_with_a_ratio_law_fitted_on_synthetic_runs(tmp_path):
    from capgap.laws.base import FitOptions, save_law
    from capgap.laws.ratio import fit
    from capgap.synthetic import synthetic_runs

    path = tmp_path / "fitted.json"
    save_law(fit(synthetic_runs(ratio=2.5, seed=1), FitOptions(bootstrap=30)), path)
    rec = recommend("200M", law=str(path), ladder="gpt2")
    assert rec.law.fitted and rec.law.source == str(path)
    assert rec.teacher_params_low < rec.teacher_params < rec.teacher_params_high
    assert rec.teacher_params == pytest.approx(2.5 * 200e6, rel=0.1)  # the planted ratio
    assert not any(w.startswith("extrapolating") for w in rec.warnings)  # synthetic students span 20M-500M
    assert any(w.startswith("extrapolating") for w in recommend("1.3B", law=str(path)).warnings)
