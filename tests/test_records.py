import math

import pytest
from pydantic import ValidationError

from capgap.core.errors import InputError
from capgap.runs.records import RunRecord, metric_direction, record_from_dict, unknown_direction_warning


def make(**overrides):
    base = dict(family="pythia", student_params=70_000_000, teacher_params=410_000_000, tokens=1_000_000,
                student_init="pruned", alpha=0.5, temperature=1.0, seed=0, metrics={"eval_loss": 3.2})
    base.update(overrides)
    return RunRecord(**base)


def test_run_id_is_derived_from_configuration_and_stable():
    a, b = make(), make(metrics={"eval_loss": 9.9})
    assert a.run_id and a.run_id == b.run_id  # metrics are results, not configuration
    assert make(seed=1).run_id != a.run_id
    assert make(teacher_params=1_000_000_000).run_id != a.run_id
    assert RunRecord.model_validate_json(a.model_dump_json()) == a


def test_explicit_run_id_is_kept():
    assert make(run_id="mine").run_id == "mine"


def test_records_are_immutable():
    record = make()
    with pytest.raises(ValidationError):
        record.seed = 3


@pytest.mark.parametrize("field, value", [
    ("student_params", 0), ("teacher_params", -5), ("student_params", 1.5), ("tokens", 0),
])
def test_sizes_must_be_positive_integers(field, value):
    with pytest.raises(ValidationError):
        make(**{field: value})


def test_float_sizes_that_are_whole_are_accepted():
    assert make(student_params=1.3e9).student_params == 1_300_000_000


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_metrics_must_be_finite(value):
    with pytest.raises(ValidationError, match="finite"):
        make(metrics={"eval_loss": value})


def test_a_run_needs_a_metric():
    with pytest.raises(ValidationError, match="at least one metric"):
        make(metrics={})


@pytest.mark.parametrize("name, direction", [
    ("eval_loss", "lower"), ("wikitext2_ppl", "lower"), ("lambada_ppl", "lower"), ("lambada_acc", "higher"),
    ("mmlu_acc", "higher"), ("perplexity", "lower"), ("mystery", None),
    # outside language models: error rates count as lower-is-better
    ("top1_err", "lower"), ("val_error", "lower"), ("error", "lower"), ("err", "lower"), ("Test_Error", "lower"),
    ("wer", "lower"), ("val_rmse", "lower"), ("top1_acc", "higher"),
])
def test_metric_direction_is_known_by_name(name, direction):
    assert metric_direction(name) == direction


def test_the_unknown_direction_warning_names_both_flags():
    message = unknown_direction_warning("xent")
    assert "'xent'" in message and "taking lower as better" in message
    assert "--higher-is-better" in message and "--lower-is-better" in message


def test_record_from_dict_gives_one_line_with_where():
    with pytest.raises(InputError) as info:
        record_from_dict({"student_params": -1, "teacher_params": 5, "metrics": {"eval_loss": 1}}, where="runs.jsonl:7")
    message = str(info.value)
    assert message.startswith("runs.jsonl:7: student_params") and "\n" not in message


def test_size_by_measure():
    record = make(student_params_nonembed=19_000_000)
    assert record.size("student") == 70_000_000
    assert record.size("student", "nonembed") == 19_000_000
    assert record.size("teacher", "nonembed") is None


def test_validation_errors_name_the_fields_meaning_not_pydantics_wording():
    import pytest

    from capgap.core.errors import InputError
    from capgap.runs.records import record_from_dict

    base = {"family": "gpt2", "student_params": 1000, "teacher_params": 2000}
    with pytest.raises(InputError) as missing:
        record_from_dict(base, where="runs.jsonl:3")
    assert "metrics (the measured metrics" in str(missing.value) and "is missing" in str(missing.value)
    assert "Field required" not in str(missing.value)
    with pytest.raises(InputError, match=r"student_params \(the student's parameter count\) must be a positive number"):
        record_from_dict({**base, "student_params": "abc", "metrics": {"eval_loss": 3.0}}, where="runs.jsonl:3")
    with pytest.raises(InputError, match="bogus is not a field of a run record; fields: run_id, family"):
        record_from_dict({**base, "metrics": {"eval_loss": 3.0}, "bogus": 1}, where="runs.jsonl:3")
