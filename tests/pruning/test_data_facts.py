"""The dataset folders a worker reports: facts read from real-format files, scans of data roots,
their cache, and the resolution of a job's data_dir name."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from cifar_files import write_cifar10, write_cifar100
from mnist_files import mnist_arrays, write_mnist

from pruneboard.spec import DatasetFacts, DatasetFolder
from pruning.data import (
    DatasetError,
    folder_facts,
    load_dataset,
    resolve_data_dir,
    scan_data_roots,
)
from pruning.data import facts as facts_module


@pytest.fixture(autouse=True)
def empty_cache(monkeypatch):
    # The cache is module state: each test starts from nothing read.
    monkeypatch.setattr(facts_module, "_CACHE", {})
    monkeypatch.setattr(facts_module, "_MISSING_ROOTS", set())


def write(dataset: str, directory: Path, **options) -> None:
    if dataset == "mnist":
        write_mnist(directory, mnist_arrays(**options), gz=True)
    elif dataset == "cifar10":
        write_cifar10(directory, **options)
    else:
        write_cifar100(directory, **options)


@pytest.mark.parametrize(("dataset", "where", "options"), [
    ("mnist", "", {}),
    ("mnist", "MNIST/raw", {"train": 11, "side": 7}),
    ("cifar10", "cifar-10-batches-py", {"per_batch": 2}),
    ("cifar10", "", {}),
    ("cifar100", "cifar-100-python", {"train": 5}),
])
def test_facts_are_what_the_readers_load(tmp_path, dataset, where, options):
    write(dataset, tmp_path / where, **options)
    loaded = load_dataset(dataset, data_dir=tmp_path)
    assert folder_facts(dataset, tmp_path) == DatasetFacts(
        loaded.input_shape, loaded.num_classes, len(loaded.train_y))


def test_plain_mnist_facts_come_from_the_headers(tmp_path):
    write_mnist(tmp_path, mnist_arrays(train=9, test=4, side=5), gz=False)
    assert folder_facts("mnist", tmp_path) == DatasetFacts((1, 5, 5), 10, 9)


def test_a_folder_without_the_dataset_or_with_bad_files_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="does not hold mnist"):
        folder_facts("mnist", tmp_path)
    with pytest.raises(DatasetError, match="not read from a folder"):
        folder_facts("digits", tmp_path)

    write_mnist(tmp_path / "cut", mnist_arrays(), gz=False)
    images = tmp_path / "cut" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-5])
    with pytest.raises(DatasetError, match="do not match the file's length"):
        folder_facts("mnist", tmp_path / "cut")

    arrays = mnist_arrays()
    arrays["train_y"] = arrays["train_y"][:4]
    write_mnist(tmp_path / "counts", arrays, gz=True)
    with pytest.raises(DatasetError, match="holds 6 images but .* holds 4 labels"):
        folder_facts("mnist", tmp_path / "counts")

    write_cifar10(tmp_path / "pickle")
    (tmp_path / "pickle" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="data_batch_3: not a readable CIFAR pickle"):
        folder_facts("cifar10", tmp_path / "pickle")


@pytest.fixture
def two_roots(tmp_path) -> tuple[Path, Path]:
    first, second = tmp_path / "first", tmp_path / "second"
    write("mnist", first / "digits-big", train=8)
    write("cifar10", first / "shared")
    write("cifar100", first / "both", train=3)
    write("mnist", first / "both", train=5)
    write("mnist", first / ".hidden")
    write_cifar10(first / "broken")
    (first / "broken" / "data_batch_1").write_bytes(b"\x80\x02garbage")
    (first / "junk").mkdir()
    (first / "junk" / "notes.txt").write_text("no dataset here")
    (first / "readme.txt").write_text("a file, not a folder")
    write("mnist", second / "shared")  # shadowed by first/shared, whatever it holds
    write("cifar100", second / "extra", train=2)
    return first, second


def entry(dataset: str, data_dir: str, shape: list[int], classes: int, size: int) -> dict:
    return {"dataset": dataset, "data_dir": data_dir, "input_shape": shape,
            "num_classes": classes, "train_size": size}


def test_a_scan_reports_every_readable_folder_first_root_first(two_roots, caplog):
    with caplog.at_level(logging.WARNING, logger="pruning.data.facts"):
        found = scan_data_roots([*two_roots, two_roots[0].parent / "missing-root"])
    assert found == [
        entry("mnist", "both", [1, 28, 28], 10, 5),
        entry("cifar100", "both", [3, 32, 32], 100, 3),
        entry("mnist", "digits-big", [1, 28, 28], 10, 8),
        entry("cifar10", "shared", [3, 32, 32], 10, 15),
        entry("cifar100", "extra", [3, 32, 32], 100, 2),
    ]
    warnings = [record.getMessage() for record in caplog.records]
    assert any("skipping cifar10 folder" in m and "broken" in m for m in warnings)
    assert any("missing-root cannot be listed" in m for m in warnings)
    for item in found:  # what the API validates a job's data_dir against
        DatasetFolder.model_validate(item)


def test_a_rescan_of_unchanged_folders_reads_no_file(two_roots, monkeypatch, caplog):
    reads: list[str] = []

    def counted(function):
        def wrapper(path, *args):
            reads.append(Path(path).parent.name)
            return function(path, *args)
        return wrapper

    monkeypatch.setattr(facts_module, "load_batch", counted(facts_module.load_batch))
    monkeypatch.setattr(facts_module, "_idx_header", counted(facts_module._idx_header))
    first = scan_data_roots(list(two_roots))
    assert "broken" in reads and "digits-big" in reads
    reads.clear()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pruning.data.facts"):
        assert scan_data_roots(list(two_roots)) == first
    assert reads == []
    assert caplog.records == []  # a known-bad folder is not warned about at every scan

    # A changed file (size or mtime) has its folder read again, and only that folder.
    batch = two_roots[1] / "extra" / "train"
    stat = batch.stat()
    os.utime(batch, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert scan_data_roots(list(two_roots)) == first
    assert set(reads) == {"extra"}  # its train and test files, no other folder's


def test_a_folder_whose_test_batch_would_fail_the_job_is_not_reported(tmp_path):
    write_cifar10(tmp_path / "bad-test" / "cifar-10-batches-py", per_batch=4)
    (tmp_path / "bad-test" / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    write_cifar10(tmp_path / "good" / "cifar-10-batches-py", per_batch=4)
    assert [item["data_dir"] for item in scan_data_roots([tmp_path])] == ["good"]


def test_a_folder_that_becomes_readable_is_reported(two_roots):
    assert "broken" not in {item["data_dir"] for item in scan_data_roots(list(two_roots))}
    write_cifar10(two_roots[0] / "broken", per_batch=4)
    found = scan_data_roots(list(two_roots))
    assert entry("cifar10", "broken", [3, 32, 32], 10, 20) in found


def test_a_name_resolves_in_the_first_root_that_has_it(two_roots):
    first, second = two_roots
    assert resolve_data_dir("shared", [first, second]) == first.absolute() / "shared"
    assert resolve_data_dir("extra", [first, second]) == second.absolute() / "extra"
    assert resolve_data_dir("junk", [first, second]).is_absolute()


@pytest.mark.parametrize("name", ["/etc", "..", "a/../b", "../first/shared", "a\\b", "a\x00b",
                                  "", ".hidden", "shared/cifar-10-batches-py", "missing",
                                  "readme.txt"])
def test_paths_and_unknown_names_are_refused_without_showing_a_path(two_roots, name):
    with pytest.raises(DatasetError) as info:
        resolve_data_dir(name, list(two_roots))
    message = str(info.value)
    assert repr(name) in message
    assert str(two_roots[0].parent) not in message
