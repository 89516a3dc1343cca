"""imagefolder: real PNG and JPEG files written with Pillow, decoded once into a memory-mapped
cache; the facts a worker reports agree with what a load gives; every refusal names the file."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pruneboard.spec import DatasetFacts
from pruning.data import DatasetError, folder_facts, imagefolder, load_dataset, scan_data_roots
from pruning.data import cache as cache_module
from pruning.data import facts as facts_module
from pruning.data.cache import CACHE_DIR


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setattr(facts_module, "_CACHE", {})
    # The fallback cache of a read-only folder goes to the temporary folder: keep it ours.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "system-tmp"))
    (tmp_path / "system-tmp").mkdir()


@pytest.fixture
def decodes(monkeypatch) -> list[Path]:
    """The files decoded from here on (the cache's builder calls imagefolder._decode once per
    image)."""
    seen: list[Path] = []
    real = imagefolder._decode
    lock = threading.Lock()

    def counting(path, *args):
        with lock:
            seen.append(path)
        return real(path, *args)

    monkeypatch.setattr(imagefolder, "_decode", counting)
    return seen


def pixels(seed: int, size: tuple[int, int], channels: int) -> np.ndarray:
    """Random uint8 pixels (H, W[, C]) for an image of ``size`` (width, height)."""
    shape = (size[1], size[0]) + ((channels,) if channels > 1 else ())
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def write_folder(directory: Path, counts: dict[str, dict[str, int]], *, size=(10, 6),
                 channels: int = 3, suffix: str = ".png") -> dict[Path, np.ndarray]:
    """``counts[split][class]`` images per class folder; returns each file's pixels."""
    written = {}
    for split, classes in counts.items():
        for name, count in classes.items():
            folder = directory / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                array = pixels(len(written), size, channels)
                path = folder / f"{i:03d}{suffix}"
                Image.fromarray(array).save(path, quality=95) if suffix == ".jpg" \
                    else Image.fromarray(array).save(path)
                written[path] = array
    return written


def as_chw(array: np.ndarray) -> np.ndarray:
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def test_an_rgb_png_folder_loads_with_labels_by_class_folder_and_normalised(tmp_path):
    written = write_folder(tmp_path, {"train": {"cat": 4, "ant": 3}, "test": {"cat": 2}})
    splits, meta = imagefolder.read_imagefolder(tmp_path)
    assert meta["classes"] == ["ant", "cat"] and meta["split"] == "test"
    assert splits.train_x.shape == (7, 3, 6, 10) and splits.train_x.dtype == np.uint8
    assert isinstance(splits.train_x, np.memmap)  # opened memory-mapped from the cache
    assert splits.train_y.tolist() == [0, 0, 0, 1, 1, 1, 1] and splits.test_y.tolist() == [1, 1]
    # PNG is lossless: every pixel is the one written, in class-then-name order.
    expected = [written[tmp_path / "train" / c / f"{i:03d}.png"]
                for c, n in (("ant", 3), ("cat", 4)) for i in range(n)]
    np.testing.assert_array_equal(splits.train_x, np.stack([as_chw(a) for a in expected]))
    data = load_dataset("imagefolder", data_dir=tmp_path)
    assert data.input_shape == (3, 6, 10) and data.num_classes == 2
    mean = data.train_x.mean(dim=(0, 2, 3))
    std = data.train_x.std(dim=(0, 2, 3), correction=0)
    torch.testing.assert_close(mean, torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(std, torch.ones(3), atol=1e-4, rtol=0)
    raw = torch.tensor(np.asarray(splits.test_x), dtype=torch.float32)
    stored_mean = torch.tensor(meta["mean"]).reshape(1, 3, 1, 1)
    stored_std = torch.tensor(meta["std"]).reshape(1, 3, 1, 1)
    torch.testing.assert_close(data.test_x, (raw - stored_mean) / stored_std)


def test_grayscale_jpegs_keep_one_channel(tmp_path):
    written = write_folder(tmp_path, {"train": {"a": 3, "b": 3}, "val": {"a": 1, "b": 1}},
                           size=(16, 16), channels=1, suffix=".jpg")
    data = load_dataset("imagefolder", data_dir=tmp_path)
    assert data.input_shape == (1, 16, 16) and len(data.test_y) == 2
    splits, meta = imagefolder.read_imagefolder(tmp_path)
    assert meta["split"] == "val" and meta["mode"] == "L"
    first = written[tmp_path / "train" / "a" / "000.jpg"].astype(float)
    # JPEG is lossy: close to what was written, not equal.
    assert np.abs(splits.train_x[0, 0].astype(float) - first).mean() < 12


def test_images_of_other_modes_are_converted_to_the_first_ones(tmp_path):
    write_folder(tmp_path, {"train": {"a": 2, "b": 2}, "test": {"a": 1}})
    Image.fromarray(pixels(9, (10, 6), 1)).save(tmp_path / "train" / "b" / "009.png")
    Image.fromarray(pixels(9, (10, 6), 4)).save(tmp_path / "train" / "b" / "010.png")
    splits, _ = imagefolder.read_imagefolder(tmp_path)
    assert splits.train_x.shape == (6, 3, 6, 10)
    gray = splits.train_x[4]  # the grayscale one, expanded to three equal channels
    np.testing.assert_array_equal(gray[0], gray[1])


def test_without_a_test_folder_a_fixed_stratified_tenth_is_held_out(tmp_path):
    write_folder(tmp_path, {"train": {"a": 20, "b": 9, "c": 2}})
    found = imagefolder.layout(tmp_path)
    assert found.split == "held out of train"
    held = [label for _, label in found.test]
    assert held.count(0) == 2 and held.count(1) == 1 and held.count(2) == 1
    assert len(found.train) == 31 - 4
    assert not {p for p, _ in found.train} & {p for p, _ in found.test}
    assert imagefolder.layout(tmp_path) == found  # the same images every time
    data = load_dataset("imagefolder", data_dir=tmp_path, seed=5)
    assert len(data.train_y) == 27 and len(data.test_y) == 4
    assert folder_facts("imagefolder", tmp_path) == DatasetFacts((3, 6, 10), 3, 27)


def test_a_second_load_opens_the_cache_without_decoding(tmp_path, decodes):
    write_folder(tmp_path, {"train": {"a": 5, "b": 5}, "test": {"a": 2, "b": 2}})
    calls = []
    first = load_dataset("imagefolder", data_dir=tmp_path,
                         progress=lambda done, total: calls.append((done, total)))
    assert len(decodes) == 14
    assert calls[0] == (0, 14) and calls[-1] == (14, 14)
    assert [p.name for p in (tmp_path / CACHE_DIR).iterdir()] != []
    again = load_dataset("imagefolder", data_dir=tmp_path,
                         progress=lambda done, total: calls.append((done, total)))
    assert len(decodes) == 14 and len(calls) == 3  # nothing decoded, no progress reported
    torch.testing.assert_close(again.train_x, first.train_x)
    torch.testing.assert_close(again.test_y, first.test_y)


def test_a_changed_file_rebuilds_the_cache_and_removes_the_stale_one(tmp_path, decodes):
    write_folder(tmp_path, {"train": {"a": 3, "b": 3}, "test": {"a": 1, "b": 1}})
    before = load_dataset("imagefolder", data_dir=tmp_path)
    old = {p.name for p in (tmp_path / CACHE_DIR).iterdir()}
    changed = tmp_path / "train" / "b" / "001.png"
    Image.fromarray(np.full((6, 10, 3), 7, np.uint8)).save(changed)
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = load_dataset("imagefolder", data_dir=tmp_path)
    assert len(decodes) == 16
    assert not torch.equal(before.train_x, after.train_x)
    new = {p.name for p in (tmp_path / CACHE_DIR).iterdir()}
    assert len(new) == 1 and not new & old


def test_image_size_resizes_into_a_cache_of_its_own(tmp_path, decodes):
    write_folder(tmp_path, {"train": {"a": 2, "b": 2}, "test": {"a": 1}}, size=(20, 12))
    native = load_dataset("imagefolder", data_dir=tmp_path)
    small = load_dataset("imagefolder", data_dir=tmp_path, image_size=8)
    assert native.input_shape == (3, 12, 20) and small.input_shape == (3, 8, 8)
    assert len(list((tmp_path / CACHE_DIR).iterdir())) == 2
    assert folder_facts("imagefolder", tmp_path, 8) == DatasetFacts((3, 8, 8), 2, 4)
    load_dataset("imagefolder", data_dir=tmp_path, image_size=8)
    assert len(decodes) == 10


def test_mixed_sizes_need_image_size_and_the_error_names_the_file(tmp_path):
    folder = tmp_path / "mixed"
    write_folder(folder, {"train": {"a": 2, "b": 2}, "test": {"a": 1}})
    odd = folder / "train" / "b" / "005.png"
    Image.fromarray(pixels(3, (7, 7), 3)).save(odd)
    with pytest.raises(DatasetError, match=f"{odd} is 7x7 but .*a/000.png is 10x6.*image_size"):
        load_dataset("imagefolder", data_dir=folder)
    assert not [p for p in (folder / CACHE_DIR).iterdir()]  # no half cache left behind
    assert load_dataset("imagefolder", data_dir=folder, image_size=5).input_shape == (3, 5, 5)
    with pytest.raises(DatasetError, match="differ in size; set image_size"):
        folder_facts("imagefolder", folder)
    entry, = scan_data_roots([tmp_path])
    assert entry["mixed_sizes"] is True and entry["input_shape"] == [3, 6, 10]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_image_is_named(tmp_path, damage):
    write_folder(tmp_path, {"train": {"a": 2, "b": 2}, "test": {"a": 1}}, size=(40, 40))
    bad = tmp_path / "train" / "a" / "001.png"
    content = bad.read_bytes()
    bad.write_bytes(b"not an image at all" if damage == "garbage" else content[:60])
    with pytest.raises(DatasetError, match=f"{bad}: not a readable image"):
        load_dataset("imagefolder", data_dir=tmp_path)
    if damage == "garbage":  # a header that cannot be read is caught by the facts already
        with pytest.raises(DatasetError, match=f"{bad}: not a readable image"):
            folder_facts("imagefolder", tmp_path)


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: (d / "train" / "empty").mkdir(), "class folder {d}/train/empty holds no"),
    (lambda d: (d / "test" / "zebra").mkdir(parents=True), "{d}/test/zebra is not a class"),
    (lambda d: (d / "train" / "a" / "000.png").unlink() or (d / "train" / "a" / "001.png")
     .unlink() or (d / "train" / "a").rmdir(), "{d}/train holds one class folder"),
    (lambda d: (d / "val").mkdir(), None),  # ignored: test/ comes first
])
def test_a_malformed_folder_is_refused_naming_the_folder(tmp_path, make, message):
    write_folder(tmp_path, {"train": {"a": 2, "b": 2}, "test": {"b": 1}})
    make(tmp_path)
    if message is None:
        assert load_dataset("imagefolder", data_dir=tmp_path).num_classes == 2
        return
    expected = message.format(d=tmp_path)
    with pytest.raises(DatasetError, match=expected):
        load_dataset("imagefolder", data_dir=tmp_path)
    with pytest.raises(DatasetError, match=expected):
        folder_facts("imagefolder", tmp_path)


def test_a_read_only_data_folder_gets_its_cache_in_the_temporary_folder(tmp_path, decodes):
    data = tmp_path / "data"
    write_folder(data, {"train": {"a": 2, "b": 2}, "test": {"a": 1}})
    (data / CACHE_DIR).write_text("a file where the cache folder would go")
    load_dataset("imagefolder", data_dir=data)
    load_dataset("imagefolder", data_dir=data)
    assert len(decodes) == 5
    fallback = cache_module.cache_roots(data)[1]
    assert fallback.is_relative_to(tmp_path / "system-tmp") and len(list(fallback.iterdir())) == 1


def test_two_builders_at_once_leave_one_complete_cache(tmp_path):
    write_folder(tmp_path, {"train": {"a": 30, "b": 30}, "test": {"a": 5}})
    results, errors = [], []
    barrier = threading.Barrier(2)

    def build():
        barrier.wait()
        try:
            results.append(imagefolder.read_imagefolder(tmp_path)[0])
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    np.testing.assert_array_equal(results[0].train_x, results[1].train_x)
    assert len(list((tmp_path / CACHE_DIR).iterdir())) == 1  # no scratch folder left


@pytest.mark.parametrize(("channels", "suffix", "counts"), [
    (3, ".png", {"train": {"x": 3, "y": 4}, "test": {"x": 2, "y": 1}}),
    (1, ".jpg", {"train": {"x": 12, "y": 5}}),
    (4, ".png", {"train": {"x": 2, "y": 2}, "val": {"y": 2}}),
])
def test_facts_are_what_a_load_gives_and_the_scan_reports_them(tmp_path, channels, suffix,
                                                               counts):
    folder = tmp_path / "pets"
    write_folder(folder, counts, channels=channels, suffix=suffix)
    data = load_dataset("imagefolder", data_dir=folder)
    facts = DatasetFacts(data.input_shape, data.num_classes, len(data.train_y))
    assert folder_facts("imagefolder", folder) == facts
    # The cache folder inside is hidden: never a class, and no data folder of its own.
    entry, = scan_data_roots([tmp_path])
    assert entry == {"dataset": "imagefolder", "data_dir": "pets",
                     "input_shape": list(facts.input_shape), "num_classes": facts.num_classes,
                     "train_size": facts.train_size, "mixed_sizes": False}


def test_a_job_reads_the_facts_and_the_data_with_its_image_size(tmp_path):
    from pruning.config import ConfigError, TrainConfig
    from pruning.job import check_buildable, data_facts, prepare

    write_folder(tmp_path, {"train": {"a": 6, "b": 6}, "test": {"a": 2, "b": 2}}, size=(12, 9))
    Image.fromarray(pixels(1, (11, 11), 3)).save(tmp_path / "train" / "a" / "099.png")
    config = TrainConfig(model="cnn-small", dataset="imagefolder", data_dir=str(tmp_path),
                         image_size=8, batch_size=4, epochs=1, device="cpu")
    assert data_facts(config) == DatasetFacts((3, 8, 8), 2, 13)
    check_buildable(config)
    job = prepare(config)
    assert job.data.input_shape == (3, 8, 8) and len(job.data.train_y) == 13
    with pytest.raises(ConfigError, match="differ in size; set image_size"):
        data_facts(config.replace(image_size=None))
    with pytest.raises(ConfigError, match="099.png is 11x11 but"):
        prepare(config.replace(image_size=None))


def test_progress_lines_report_the_first_the_last_and_few_between(tmp_path):
    write_folder(tmp_path, {"train": {"a": 300, "b": 300}, "test": {"a": 1}}, size=(4, 4))
    lines: list[str] = []
    load_dataset("imagefolder", data_dir=tmp_path,
                 progress=imagefolder.progress_lines(lines.append, every_s=3600))
    assert lines == ["decoding images into the dataset cache: 0/601",
                     "decoding images into the dataset cache: 601/601"]
