import pytest

from pruning.config import ConfigError, TrainConfig


@pytest.mark.parametrize("values, field, message", [
    ({"epochs": 0}, "epochs", r"must be in \[1, 10000\], got 0"),
    ({"lr": -0.1}, "lr", r"must be in \(0.0, 10.0\], got -0.1"),
    ({"mu": 1.5}, "mu", r"in \(0.0, 1.0\]"),
    ({"batch_size": 2.5}, "batch_size", "whole number"),
    ({"batch_size": "64"}, "batch_size", "must be a number"),
    ({"method": "adam"}, "method", "one of sgd, grda, sdprun"),
    ({"model": "resnet18"}, "model", "one of mlp, cnn-small"),
    ({"dataset": "mnist"}, "data_dir", "nothing is downloaded"),
    ({"momentum": 0.9}, "momentum", "applies only to method sgd"),
    ({"amp": "yes"}, "amp", "true or false"),
    ({"mlp_widths": [300, 0]}, "mlp_widths[1]", r"in \[1, 65536\], got 0"),
    ({"mlp_widths": "300,x1"}, "mlp_widths", "comma-separated list of ints"),
    ({"lr": float("nan")}, "lr", "finite"),
    ({"optimizer": "sgd"}, "optimizer", "unknown field"),
])
def test_a_bad_config_is_refused_naming_the_field(values, field, message):
    with pytest.raises(ConfigError, match=message) as caught:
        TrainConfig.from_dict(values)
    assert caught.value.field == field


def test_lists_may_be_written_as_text_and_round_trip_through_a_dict():
    config = TrainConfig.from_dict({"mlp_widths": "64, 32", "synthetic_shape": "3x16x16",
                                    "dataset": "synthetic", "exclude": "features.1"})
    assert config.mlp_widths == (64, 32)
    assert config.synthetic_shape == (3, 16, 16)
    assert config.exclude == ("features.1",)
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_sgd_takes_momentum():
    assert TrainConfig(method="sgd", momentum=0.9).momentum == 0.9
