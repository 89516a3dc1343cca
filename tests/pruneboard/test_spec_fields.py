"""The job spec's per-field rules: a bad value is refused naming the field and its range."""

import subprocess
import sys

import pytest
from pydantic import ValidationError

from pruneboard.spec import JobSpec, SpecError


@pytest.mark.parametrize("values, field, message", [
    ({"epochs": 0}, "epochs", r"must be in \[1, 10000\], got 0"),
    ({"epochs": True}, "epochs", "valid integer, got True"),
    ({"epochs": 5.0}, "epochs", "valid integer, got 5.0"),
    ({"lr": -0.1}, "lr", r"must be in \(0.0, 10.0\], got -0.1"),
    ({"mu": 1.0}, "mu", r"in \(0.0, 1.0\), got 1.0"),
    ({"batch_size": 2.5}, "batch_size", "valid integer"),
    ({"batch_size": "64"}, "batch_size", "valid integer, got '64'"),
    ({"method": "adam"}, "method", "one of sgd, grda, sdprun"),
    ({"model": "ResNet 18"}, "model", "pattern"),
    ({"dataset": "mnist"}, "data_dir", "nothing is downloaded"),
    ({"momentum": 0.9}, "momentum", "read only by method sgd"),
    ({"amp": "yes"}, "amp", "valid boolean"),
    ({"mlp_widths": [300, 0]}, "mlp_widths.1", r"in \[1, 65536\], got 0"),
    ({"mlp_widths": "300,100"}, "mlp_widths", "valid tuple"),
    ({"lr": float("nan")}, "lr", "got nan"),
    ({"optimizer": "sgd"}, "optimizer", "unknown field"),
    ({"data_dir": "a\x00b", "dataset": "mnist"}, "data_dir", "NUL"),
    ({"data_dir": "x" * 501, "dataset": "mnist"}, "data_dir", "at most 500"),
    ({"seed": 2**64}, "seed", "must be in"),
    ({"dataset": "synthetic", "synthetic_shape": [1, 8]}, "synthetic_shape.2", "required"),
    ({"exclude": ["features.0; import os"]}, "exclude.0", "pattern"),
])
def test_a_bad_config_is_refused_naming_the_field(values, field, message):
    with pytest.raises(SpecError, match=message) as caught:
        JobSpec.from_dict(values)
    assert caught.value.field == field


def test_constructing_directly_raises_a_validation_error_naming_the_field():
    with pytest.raises(ValidationError, match="mu"):
        JobSpec(mu=1.0)


def test_defaults_round_trip_through_a_dict():
    config = JobSpec(mlp_widths=[64, 32], exclude=["features.1"])
    assert config.mlp_widths == (64, 32) and config.exclude == ("features.1",)
    assert JobSpec.from_dict(config.to_dict()) == config
    assert config.replace(epochs=3).epochs == 3
    with pytest.raises(SpecError, match="epochs"):
        config.replace(epochs=0)


def test_sgd_takes_momentum():
    assert JobSpec(method="sgd", momentum=0.9).momentum == 0.9


def test_the_spec_and_the_cli_parser_import_without_torch():
    # torch's import is what made `import pruning.config` take 3 s; the spec takes ~0.15 s.
    code = ("import sys, pruneboard.spec, cli.main; cli.main.build_parser(); "
            "print(sorted(m for m in ('torch', 'pruning', 'sqlalchemy') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"
