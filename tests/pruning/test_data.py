"""Dataset readers on small files in the real formats, and the batched augmentation."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from cifar_files import cifar_batch, write_cifar10, write_pickle
from mnist_files import idx_bytes, mnist_arrays, write_mnist

from pruning.data import (
    DATASET_NAMES,
    Dataset,
    DatasetError,
    augment_batch,
    load_dataset,
    read_cifar10,
    read_cifar100,
    read_mnist,
)
from pruning.data.cifar import load_batch
from pruning.data.mnist import read_idx


def images_from_rows(data: np.ndarray) -> np.ndarray:
    """The documented CIFAR layout: 1024 red, then green, then blue values, each row by row."""
    return data.reshape(-1, 3, 32, 32)


# digits --------------------------------------------------------------------------------------


def test_digits_shapes_and_fixed_stratified_split() -> None:
    first = load_dataset("digits", seed=0)
    other_seed = load_dataset("digits", seed=123)

    assert first.input_shape == (1, 8, 8)
    assert first.num_classes == 10 and not first.augment
    assert first.train_x.shape == (1437, 1, 8, 8) and first.test_x.shape == (360, 1, 8, 8)
    assert first.train_x.dtype == torch.float32 and first.train_y.dtype == torch.int64
    torch.testing.assert_close(first.test_x, other_seed.test_x, rtol=0, atol=0)
    torch.testing.assert_close(first.train_y, other_seed.train_y, rtol=0, atol=0)
    # Stratified: each class has 35 or 36 of the 360 test images (its share of 1797, rounded).
    test_counts = torch.bincount(first.test_y, minlength=10)
    assert test_counts.min() >= 35 and test_counts.max() <= 37
    train_mean = first.train_x.mean().item()
    train_std = first.train_x.std(correction=0).item()
    assert abs(train_mean) < 1e-5 and abs(train_std - 1) < 1e-5


# mnist ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("gz", "subdir"), [(True, ""), (False, "MNIST/raw"), (True, "mnist")])
def test_mnist_round_trips_idx_files(tmp_path: Path, gz: bool, subdir: str) -> None:
    arrays = mnist_arrays()
    write_mnist(tmp_path / subdir, arrays, gz=gz)

    raw = read_mnist(tmp_path)
    np.testing.assert_array_equal(raw.train_x, arrays["train_x"][:, None])
    np.testing.assert_array_equal(raw.train_y, arrays["train_y"])
    np.testing.assert_array_equal(raw.test_x, arrays["test_x"][:, None])
    np.testing.assert_array_equal(raw.test_y, arrays["test_y"])

    dataset = load_dataset("mnist", data_dir=str(tmp_path))
    assert dataset.input_shape == (1, 28, 28) and dataset.num_classes == 10
    torch.testing.assert_close(dataset.train_y, torch.from_numpy(arrays["train_y"]).long())
    # Normalisation is one affine map per channel, fitted on the train split.
    pixels = torch.from_numpy(arrays["train_x"]).float()
    mean, std = pixels.mean(), pixels.std(correction=0)
    torch.testing.assert_close(dataset.train_x[:, 0], (pixels - mean) / std)
    test_pixels = torch.from_numpy(arrays["test_x"]).float()
    torch.testing.assert_close(dataset.test_x[:, 0], (test_pixels - mean) / std)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: (2049).to_bytes(4, "big") + b[4:], "magic number is 2049, expected 2051"),
        (lambda b: b[:-5], "need 4704 bytes of data; the file has 4699"),
        (lambda b: b[:10], "header needs 16 bytes"),
        (lambda b: b"", "too short"),
    ],
)
def test_malformed_idx_names_the_file(tmp_path: Path, damage, message: str) -> None:
    arrays = mnist_arrays()
    write_mnist(tmp_path, arrays, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))

    with pytest.raises(DatasetError, match=message) as info:
        load_dataset("mnist", data_dir=tmp_path)
    assert str(path) in str(info.value)


def test_corrupt_gzip_and_count_mismatch_name_the_files(tmp_path: Path) -> None:
    arrays = mnist_arrays()
    write_mnist(tmp_path, arrays, gz=True)
    bad_gzip = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad_gzip.write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match="cannot read") as info:
        read_mnist(tmp_path)
    assert str(bad_gzip) in str(info.value)

    arrays["test_y"] = arrays["test_y"][:2]
    write_mnist(tmp_path, arrays, gz=True)
    with pytest.raises(DatasetError, match="holds 3 images but .*t10k-labels.* holds 2 labels"):
        read_mnist(tmp_path)


def test_idx_labels_out_of_range_are_refused(tmp_path: Path) -> None:
    arrays = mnist_arrays()
    arrays["train_y"][0] = 10
    write_mnist(tmp_path, arrays, gz=False)
    with pytest.raises(DatasetError, match="label 10 is outside 0..9"):
        read_mnist(tmp_path)


def test_read_idx_reads_labels(tmp_path: Path) -> None:
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(2049, np.array([3, 1, 4], dtype=np.uint8)))
    np.testing.assert_array_equal(read_idx(path, 2049), [3, 1, 4])


def test_missing_mnist_files_list_expected_files_and_searched_dirs(tmp_path: Path) -> None:
    write_mnist(tmp_path, mnist_arrays(), gz=True)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte\\[.gz\\]") as info:
        load_dataset("mnist", data_dir=tmp_path)
    assert str(tmp_path / "MNIST" / "raw") in str(info.value)


# cifar ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("subdir", ["cifar-10-batches-py", ""])
def test_cifar10_round_trips_batches(tmp_path: Path, subdir: str) -> None:
    batches = write_cifar10(tmp_path / subdir)

    raw = read_cifar10(tmp_path)
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    expected_train = np.concatenate([images_from_rows(b[b"data"]) for b in train])
    np.testing.assert_array_equal(raw.train_x, expected_train)
    np.testing.assert_array_equal(raw.train_y, sum((b[b"labels"] for b in train), []))
    np.testing.assert_array_equal(raw.test_x, images_from_rows(batches["test_batch"][b"data"]))
    np.testing.assert_array_equal(raw.test_y, batches["test_batch"][b"labels"])
    # Pixel (channel 1, row 2, column 5) of the first image is value 1024 + 2*32 + 5 of its row.
    assert raw.train_x[0, 1, 2, 5] == train[0][b"data"][0, 1024 + 2 * 32 + 5]

    dataset = load_dataset("cifar10", data_dir=tmp_path)
    assert dataset.input_shape == (3, 32, 32) and dataset.num_classes == 10 and dataset.augment
    assert dataset.train_x.shape == (15, 3, 32, 32) and dataset.test_x.shape == (3, 3, 32, 32)
    per_channel_mean = dataset.train_x.mean(dim=(0, 2, 3))
    torch.testing.assert_close(per_channel_mean, torch.zeros(3), atol=1e-5, rtol=0)


def test_cifar100_round_trips_fine_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    directory = tmp_path / "cifar-100-python"
    batches = {name: cifar_batch(rng, 4, b"fine_labels", 100) for name in ("train", "test")}
    for name, batch in batches.items():
        batch[b"coarse_labels"] = [0] * 4
        write_pickle(directory / name, batch)

    raw = read_cifar100(tmp_path)
    np.testing.assert_array_equal(raw.train_x, images_from_rows(batches["train"][b"data"]))
    np.testing.assert_array_equal(raw.train_y, batches["train"][b"fine_labels"])
    np.testing.assert_array_equal(raw.test_y, batches["test"][b"fine_labels"])
    dataset = load_dataset("cifar100", data_dir=tmp_path)
    assert dataset.num_classes == 100 and dataset.augment


class _RunsCode:
    """Pickles as a call of the global ``marker``: the shape of every pickle exploit."""

    def __init__(self, module: str, name: str, argument: str) -> None:
        self.module, self.name, self.argument = module, name, argument

    def __reduce__(self):
        import importlib

        return getattr(importlib.import_module(self.module), self.name), (self.argument,)


def test_forbidden_global_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "was-run"
    rng = np.random.default_rng(0)
    batch = cifar_batch(rng, 2, b"labels", 10)
    batch[b"payload"] = _RunsCode("os", "system", f"touch {marker}")
    path = tmp_path / "data_batch_1"
    write_pickle(path, batch)

    with pytest.raises(DatasetError, match="refusing to unpickle (os|posix).system") as info:
        load_batch(path, "labels", 10)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_codecs_global_cannot_run_another_codec(tmp_path: Path) -> None:
    # Protocol-2 pickles use _codecs.encode(text, "latin1") for bytes; the same global with
    # another codec must not run. Hand-written: PROTO 2, GLOBAL, two BINUNICODE, TUPLE2, REDUCE.
    path = tmp_path / "test_batch"
    path.write_bytes(
        b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x0a\x00\x00\x00zlib_codec\x86R."
    )
    with pytest.raises(DatasetError, match="refusing _codecs.encode with encoding 'zlib_codec'"):
        load_batch(path, "labels", 10)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x80\x02}q\x00(X\x04", "not a readable CIFAR pickle"),
        (pickle.dumps([1, 2], protocol=2), "expected a pickled dict, found list"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=2), "missing key"),
        (
            pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, protocol=2),
            "rows have 100 values",
        ),
        (
            pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, protocol=2),
            "2 images but 'labels' has shape",
        ),
        (
            pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, protocol=2),
            "outside 0..9",
        ),
    ],
)
def test_malformed_cifar_batch_names_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "test_batch"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message) as info:
        load_batch(path, "labels", 10)
    assert str(path) in str(info.value)


def test_missing_cifar_files_are_listed(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DatasetError, match="data_batch_4.*cifar-10-batches-py"):
        load_dataset("cifar10", data_dir=tmp_path)


# load_dataset arguments ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100"])
def test_file_datasets_need_a_data_dir(name: str, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="--data-dir"):
        load_dataset(name)
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(name, data_dir=tmp_path / "nowhere")


def test_unknown_dataset_lists_the_names() -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'svhn'.*" + ", ".join(DATASET_NAMES)):
        load_dataset("svhn")


# synthetic -----------------------------------------------------------------------------------


def test_synthetic_is_deterministic_per_seed_and_shaped_as_asked() -> None:
    kwargs = dict(synthetic_shape=(3, 6, 5), synthetic_classes=4, synthetic_size=64)
    first = load_dataset("synthetic", seed=1, **kwargs)
    again = load_dataset("synthetic", seed=1, **kwargs)
    other = load_dataset("synthetic", seed=2, **kwargs)

    assert first.input_shape == (3, 6, 5) and first.num_classes == 4
    assert first.train_x.shape == (64, 3, 6, 5) and first.test_x.shape == (16, 3, 6, 5)
    for field in ("train_x", "train_y", "test_x", "test_y"):
        torch.testing.assert_close(getattr(first, field), getattr(again, field), rtol=0, atol=0)
    assert not torch.equal(first.train_x, other.train_x)
    assert torch.bincount(first.train_y).tolist() == [16] * 4


def test_synthetic_is_learnable_by_nearest_class_mean() -> None:
    data = load_dataset("synthetic", seed=0)
    means = torch.stack([data.train_x[data.train_y == k].mean(0) for k in range(10)])
    distances = torch.cdist(data.test_x.flatten(1), means.flatten(1))
    accuracy = (distances.argmin(1) == data.test_y).float().mean().item()
    assert accuracy > 0.9


def test_synthetic_arguments_are_validated() -> None:
    with pytest.raises(DatasetError, match="synthetic_classes"):
        load_dataset("synthetic", synthetic_classes=1)
    with pytest.raises(DatasetError, match="synthetic_size"):
        load_dataset("synthetic", synthetic_size=3)


def test_dataset_to_moves_every_tensor() -> None:
    data = load_dataset("synthetic", synthetic_size=16)
    moved = data.to(torch.device("cpu"))
    assert isinstance(moved, Dataset) and moved.name == "synthetic"
    assert moved.input_shape == data.input_shape


# augment_batch -------------------------------------------------------------------------------


def matching_transforms(image: torch.Tensor, padded: torch.Tensor, pad: int) -> list:
    """Every (dy, dx, flipped) whose crop of ``padded`` equals ``image``."""
    height, width = image.shape[-2:]
    found = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy : dy + height, dx : dx + width]
            for flipped in (False, True):
                if torch.equal(crop.flip(-1) if flipped else crop, image):
                    found.append((dy, dx, flipped))
    return found


def test_augment_outputs_are_padded_crops_maybe_flipped() -> None:
    x = torch.randn(32, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = augment_batch(x, torch.Generator().manual_seed(1))

    assert out.shape == x.shape and out.dtype == x.dtype
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    transforms = [matching_transforms(out[i], padded[i], 4) for i in range(len(x))]
    assert all(len(found) == 1 for found in transforms)
    shifts = {(dy, dx) for [(dy, dx, _)] in transforms}
    flips = {flipped for [(_, _, flipped)] in transforms}
    assert len(shifts) > 10 and flips == {False, True}


def test_augment_without_padding_only_flips() -> None:
    x = torch.randn(64, 2, 5, 7)
    out = augment_batch(x, torch.Generator().manual_seed(0), padding=0)
    flipped = [torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x, strict=True)]
    kept = [torch.equal(o, xi) for o, xi in zip(out, x, strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))
    assert 10 < sum(flipped) < 54


def test_augment_is_reproducible_from_the_generator_state() -> None:
    x = torch.randn(16, 3, 32, 32)
    first = augment_batch(x, torch.Generator().manual_seed(7))
    again = augment_batch(x, torch.Generator().manual_seed(7))
    other = augment_batch(x, torch.Generator().manual_seed(8))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first, other)


def test_augment_rejects_a_non_batch() -> None:
    with pytest.raises(ValueError, match="expects \\(N, C, H, W\\)"):
        augment_batch(torch.zeros(3, 8, 8), torch.Generator())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augment_gives_the_same_result_on_cuda() -> None:
    x = torch.randn(64, 3, 32, 32)
    on_cpu = augment_batch(x, torch.Generator().manual_seed(3))
    on_gpu = augment_batch(x.cuda(), torch.Generator().manual_seed(3))
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=0, atol=0)
