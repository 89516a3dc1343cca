"""Settings from the environment, as a deployment sets them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from backend.settings import Settings
from pruneboard.spec import ServiceLimits


def test_service_limits_are_read_from_nested_variables(monkeypatch):
    monkeypatch.setenv("PRUNEBOARD_LIMITS__MAX_MODEL_PARAMS", "5000")
    monkeypatch.setenv("PRUNEBOARD_LIMITS__MAX_EVAL_SAMPLES", "1_000")
    limits = Settings(_env_file=None).limits
    assert limits.max_model_params == 5000
    assert limits.max_eval_samples == 1000
    assert limits.max_total_steps == ServiceLimits().max_total_steps  # the rest keep defaults


@pytest.mark.parametrize("text", ["many", "0", "1.5"])
def test_a_bad_limit_is_refused_naming_it(monkeypatch, text):
    monkeypatch.setenv("PRUNEBOARD_LIMITS__MAX_TOTAL_STEPS", text)
    with pytest.raises(ValidationError, match="limits.max_total_steps"):
        Settings(_env_file=None)
