"""npz: real NumPy archives in each layout; facts from the headers agree with a load; every
refusal names the file and the key."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pruneboard.spec import DatasetFacts
from pruning.data import DatasetError, folder_facts, load_dataset, scan_data_roots
from pruning.data import facts as facts_module


@pytest.fixture(autouse=True)
def empty_cache(monkeypatch):
    monkeypatch.setattr(facts_module, "_CACHE", {})


def arrays(train=12, test=5, sample=(3, 6, 5), classes=4, dtype=np.uint8, seed=0) -> dict:
    rng = np.random.default_rng(seed)

    def images(n):
        values = rng.integers(0, 256, (n, *sample))
        return values.astype(dtype) if dtype == np.uint8 else (values / 255).astype(dtype)

    return {"x_train": images(train), "y_train": np.arange(train) % classes,
            "x_test": images(test), "y_test": np.arange(test) % classes}


def save(directory: Path, name="data.npz", compressed=True, **values) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    (np.savez_compressed if compressed else np.savez)(path, **values)
    return path


def channels_first(x):
    return x


def channels_last(x):
    return x.transpose(0, 3, 1, 2)


def no_channel(x):
    return x[:, None]


@pytest.mark.parametrize(("sample", "expected", "to_nchw"), [
    ((3, 6, 5), (3, 6, 5), channels_first),
    ((6, 5, 3), (3, 6, 5), channels_last),
    ((7, 9, 1), (1, 7, 9), channels_last),
    ((6, 5), (1, 6, 5), no_channel),
    ((3, 8, 3), (3, 8, 3), channels_first),  # both ends could be channels: read as channels first
])
@pytest.mark.parametrize("compressed", [True, False])
def test_each_layout_loads_as_nchw_and_the_facts_agree(tmp_path, sample, expected, to_nchw,
                                                       compressed):
    values = arrays(sample=sample)
    save(tmp_path, compressed=compressed, **values)
    data = load_dataset("npz", data_dir=tmp_path)
    assert data.input_shape == expected and data.num_classes == 4
    assert data.train_y.tolist() == values["y_train"].tolist()
    assert folder_facts("npz", tmp_path) == DatasetFacts(expected, 4, 12)
    raw = torch.tensor(to_nchw(values["x_train"]), dtype=torch.float32)
    mean = raw.mean(dim=(0, 2, 3), keepdim=True)
    std = raw.std(dim=(0, 2, 3), correction=0, keepdim=True)
    torch.testing.assert_close(data.train_x, (raw - mean) / std, atol=1e-4, rtol=1e-4)


def test_float_images_and_keras_style_labels_load(tmp_path):
    values = arrays(sample=(8, 8, 3), dtype=np.float32, classes=3)
    values["y_train"] = values["y_train"][:, None]  # (N, 1), as keras.datasets returns them
    save(tmp_path, name="cifar-like.npz", **values)
    data = load_dataset("npz", data_dir=tmp_path)
    assert data.input_shape == (3, 8, 8) and data.num_classes == 3
    assert data.train_y.shape == (12,)
    torch.testing.assert_close(data.train_x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5,
                               rtol=0)


def test_the_facts_read_headers_not_pixels(tmp_path):
    # x_train's header promises 50 images of 3x32x32 but its data is cut short: a load fails on
    # it, the facts (headers and labels only) do not read that far.
    values = arrays(train=50, sample=(3, 32, 32))
    path = tmp_path / "data.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for key, array in values.items():
            buffer = io.BytesIO()
            np.save(buffer, array)
            content = buffer.getvalue()
            archive.writestr(f"{key}.npy", content[:200] if key == "x_train" else content)
    assert folder_facts("npz", tmp_path) == DatasetFacts((3, 32, 32), 4, 50)
    with pytest.raises(DatasetError, match=f"{path}: cannot be read"):
        load_dataset("npz", data_dir=tmp_path)


def bad(key: str, value) -> dict:
    values = arrays()
    values[key] = value
    return values


@pytest.mark.parametrize(("values", "message"), [
    ({k: v for k, v in arrays().items() if k != "y_test"}, "has no y_test"),
    (bad("y_train", np.arange(11) % 4), "key x_train holds 12 images but .*key y_train holds 11"),
    (bad("x_test", np.zeros((6, 3, 6, 5), np.uint8)), "key x_test holds 6 images but"),
    (bad("y_train", np.arange(12) - 1), "key y_train: labels must be integers 0..K-1; found -1"),
    (bad("y_test", np.zeros(5)), "key y_test: labels must be integers 0..K-1; got dtype float64"),
    (bad("x_test", np.zeros((5, 3, 4, 4), np.uint8)), "key x_train holds images of .*key x_test"),
    (bad("x_train", np.zeros((12, 90), np.uint8)), "key x_train: images must be .*got shape"),
    (bad("x_train", np.full((12, 3, 6, 5), "a")), "key x_train: images must be uint8"),
    (bad("y_train", np.zeros((12, 2), np.int64)), "key y_train: labels must be one integer"),
])
def test_a_malformed_archive_is_refused_naming_the_file_and_key(tmp_path, values, message):
    path = save(tmp_path, **values)
    for read in (lambda: load_dataset("npz", data_dir=tmp_path),
                 lambda: folder_facts("npz", tmp_path)):
        with pytest.raises(DatasetError, match=f"{path}.*{message}"):
            read()


def test_nan_pixels_are_refused_on_load(tmp_path):
    values = arrays(dtype=np.float32)
    values["x_train"][3, 0, 0, 0] = np.nan
    path = save(tmp_path, **values)
    with pytest.raises(DatasetError, match=f"{path}, key x_train: images hold NaN"):
        load_dataset("npz", data_dir=tmp_path)


def test_which_file_is_read_and_a_file_that_is_not_an_archive(tmp_path):
    save(tmp_path, name="a.npz", **arrays(classes=2))
    save(tmp_path, name="b.npz", **arrays(classes=3))
    with pytest.raises(DatasetError, match="several .npz files .*a.npz, b.npz.*data.npz"):
        load_dataset("npz", data_dir=tmp_path)
    save(tmp_path, name="data.npz", **arrays(classes=4))
    assert load_dataset("npz", data_dir=tmp_path).num_classes == 4
    other = tmp_path / "other"
    other.mkdir()
    (other / "broken.npz").write_bytes(b"no zip here")
    with pytest.raises(DatasetError, match=f"{other / 'broken.npz'}: cannot be read"):
        load_dataset("npz", data_dir=other)
    with pytest.raises(DatasetError, match=f"{other / 'broken.npz'}: cannot be read"):
        folder_facts("npz", other)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="holds no .npz file"):
        load_dataset("npz", data_dir=empty)


def test_the_scan_reports_npz_folders_and_skips_broken_ones(tmp_path, caplog):
    save(tmp_path / "good", **arrays(sample=(5, 5, 1)))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.npz").write_bytes(b"no zip here")
    assert scan_data_roots([tmp_path]) == [{"dataset": "npz", "data_dir": "good",
                                            "input_shape": [1, 5, 5], "num_classes": 4,
                                            "train_size": 12}]
    assert "broken" in caplog.text
