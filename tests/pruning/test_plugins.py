"""Worker plugins: a real installed distribution (a ``*.dist-info`` folder with entry points and
its module on sys.path) is discovered by importlib.metadata; the engine builds its models and
loads its datasets by name; a broken plugin is skipped with a warning."""

from __future__ import annotations

import logging
import sys

import pytest
import torch
from plugin_dist import installed_plugins

from pruneboard.spec import DatasetFacts
from pruning import plugins
from pruning.config import ConfigError, TrainConfig
from pruning.data import DatasetError, load_dataset
from pruning.job import check_buildable, data_facts
from pruning.models import ModelError, build_model


@pytest.fixture
def installed(tmp_path, monkeypatch):
    monkeypatch.setattr(plugins, "_WARNED", set())
    with installed_plugins(tmp_path, monkeypatch) as module:
        yield module


def test_the_names_of_working_plugins_are_reported_and_broken_ones_skipped(installed, caplog):
    with caplog.at_level(logging.WARNING, logger="pruning.plugins"):
        names = plugins.plugin_names()
    assert names == {"models": ["exploding-net", "stringy-net", "tiny-net"],
                     "datasets": ["blobs", "lopsided"]}
    text = caplog.text
    assert f"broken-import = {installed}_missing:tiny: cannot be loaded: ModuleNotFoundError" \
        in text
    assert "not-callable" in text and "is a int, not a callable" in text
    assert "Upper-Case" in text and "must match" in text
    assert f"mlp = {installed}:tiny: the name is built in" in text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pruning.plugins"):
        plugins.plugin_names()
    assert caplog.text == ""  # each problem is logged once, not at every rescan


def test_build_model_finds_a_plugin_model_and_names_what_exists(installed):
    model = build_model("tiny-net", input_shape=(2, 4, 4), num_classes=3)
    assert model(torch.zeros(5, 2, 4, 4)).shape == (5, 3)
    assert isinstance(build_model("mlp", input_shape=(1, 8, 8), num_classes=10),
                      type(build_model("mlp", input_shape=(1, 4, 4), num_classes=2)))
    with pytest.raises(ModelError, match="unknown model 'resnet18'; built in: mlp.*wrn-28-10; "
                                         "from plugins: exploding-net, stringy-net, tiny-net"):
        build_model("resnet18", input_shape=(3, 8, 8), num_classes=2)
    with pytest.raises(ModelError, match="plugin model 'exploding-net' failed .*RuntimeError: "
                                         "no GPU library here"):
        build_model("exploding-net", input_shape=(3, 8, 8), num_classes=2)
    with pytest.raises(ModelError, match="'stringy-net' returned a str, not an nn.Module"):
        build_model("stringy-net", input_shape=(3, 8, 8), num_classes=2)


def test_without_plugins_the_error_says_none_are_installed():
    with pytest.raises(ModelError, match="from plugins: none installed"):
        build_model("my-net", input_shape=(3, 8, 8), num_classes=2)
    with pytest.raises(DatasetError, match="unknown dataset 'my-data'.*none installed"):
        load_dataset("my-data")


def test_load_dataset_reads_a_plugin_dataset_with_the_seed_and_data_dir(installed, tmp_path):
    data = load_dataset("blobs", seed=7)
    assert data.input_shape == (2, 4, 4) and data.num_classes == 3
    assert len(data.train_y) == 30 and len(data.test_y) == 10
    torch.testing.assert_close(data.train_x.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5,
                               rtol=0)
    load_dataset("blobs", data_dir=tmp_path, seed=1)
    assert sys.modules[installed].SEEN == [(None, 7), (tmp_path, 1)]
    with pytest.raises(DatasetError, match="plugin dataset 'lopsided', x_train holds 4 images "
                                           "but plugin dataset 'lopsided', y_train holds 3"):
        load_dataset("lopsided")
    with pytest.raises(DatasetError, match="unknown dataset 'svhn'; built in: digits.*; from "
                                           "plugins: blobs, lopsided"):
        load_dataset("svhn")


def test_a_job_of_a_plugin_model_on_a_plugin_dataset_is_buildable(installed):
    config = TrainConfig(model="tiny-net", dataset="blobs", batch_size=8, epochs=1)
    assert data_facts(config) == DatasetFacts((2, 4, 4), 3, 30)
    check_buildable(config)
    with pytest.raises(ConfigError, match="unknown model 'nobody-net'"):
        check_buildable(config.replace(model="nobody-net"))
