"""Bad --tolerance values are refused, one line and exit 2, everywhere recommend refuses them."""

import pytest


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf"])
def test_evidence_refuses_a_bad_tolerance_as_recommend_does(run_cli, value):
    for verb in (["evidence"], ["recommend", "--student", "1B"]):
        result = run_cli(*verb, f"--tolerance={value}")
        assert result.returncode == 2 and "must be a positive number" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
