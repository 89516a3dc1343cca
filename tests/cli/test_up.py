"""`pruneboard up` as a person runs it: a real subprocess with its own worker on SQLite and the
file-system broker, driven by the CLI commands against its URL."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path

import httpx
import pytest
from cifar_files import write_cifar10
from embedded import free_port, running_up

from cli.main import main

SMALL_JOB = {"model": "mlp", "mlp_widths": [32, 16], "epochs": 3}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """A data root beside DIR/datasets, holding one tiny CIFAR-10 folder named c10."""
    root = tmp_path_factory.mktemp("data-root")
    write_cifar10(root / "c10" / "cifar-10-batches-py", per_batch=8)
    return root


@pytest.fixture(scope="module")
def service(tmp_path_factory, data_root):
    with running_up(tmp_path_factory.mktemp("up"), "--data-root", str(data_root)) as stack:
        yield stack


def cli(service, *argv: str) -> int:
    return main([*argv, "--url", service["url"], "--token", service["token"]])


def run_with_deadline(function, timeout_s: float, log_path: Path):
    """A hung watch fails the test with the service log instead of hanging the run."""
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(value=function()), daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        pytest.fail(f"still running after {timeout_s} s; log:\n{log_path.read_text()[-4000:]}")
    return result["value"]


def test_up_starts_the_service_with_a_private_admin_token(service):
    token_file = service["data_dir"] / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert service["token"].startswith("pb_")
    printed = service["log"].read_text()
    assert f"Pruneboard at {service['url']}/" in printed and service["token"] in printed
    assert (service["data_dir"] / "pruneboard.db").is_file()


def test_a_job_runs_from_submit_to_metrics(service, tmp_path, capsys):
    config = tmp_path / "job.json"
    config.write_text(json.dumps(SMALL_JOB))
    assert cli(service, "submit", str(config), "--name", "tiny", "--tag", "smoke") == 0
    job_id = int(capsys.readouterr().out.strip())

    assert run_with_deadline(lambda: cli(service, "watch", str(job_id)), 240,
                             service["log"]) == 0
    watched = capsys.readouterr()
    assert f"job {job_id} succeeded" in watched.out
    assert "test accuracy" in watched.out and "FLOPs removed" in watched.out

    assert cli(service, "jobs", "--tag", "smoke") == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].split()[:3] == ["id", "status", "progress"]
    assert listed[1].split()[:6] == [str(job_id), "succeeded", "100%", "mlp", "digits",
                                     "sdprun"]

    assert cli(service, "metrics", str(job_id), "--csv") == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == "key,step,value,wall_time" and len(rows) > 10
    assert cli(service, "metrics", str(job_id)) == 0
    assert "test_accuracy" in capsys.readouterr().out
    out_file = tmp_path / "metrics.csv"
    assert cli(service, "metrics", str(job_id), "--csv", "-o", str(out_file)) == 0
    assert out_file.read_text().splitlines() == rows
    assert capsys.readouterr().err.strip() == f"{len(rows) - 1} points written to {out_file}"

    assert cli(service, "cancel", str(job_id)) == 2
    assert capsys.readouterr().err.strip() == (
        f"pruneboard: error: job {job_id} is already succeeded")


def test_bad_input_and_bad_credentials_are_messages(service, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: mlp\nepochs: 0\n")
    assert cli(service, "submit", str(bad)) == 2
    error = capsys.readouterr().err
    assert error.startswith("pruneboard: error: invalid request: epochs: ")
    assert "must be in [1, 10000], got 0" in error

    assert main(["jobs", "--url", service["url"], "--token", "pb_0000_wrong"]) == 2
    assert capsys.readouterr().err.strip() == (
        "pruneboard: error: not authenticated: invalid token (pass --token or set "
        "PRUNEBOARD_TOKEN; `pruneboard token create` makes one)")

    nowhere = f"http://127.0.0.1:{free_port()}"
    assert main(["jobs", "--url", nowhere, "--token", service["token"]]) == 2
    assert capsys.readouterr().err.strip() == (
        f"pruneboard: error: cannot reach the Pruneboard API at {nowhere}: is `pruneboard up` "
        f"running?")


def test_the_admin_token_is_kept_across_starts_and_replaced_with_its_database(tmp_path):
    from cli.up_command import ensure_admin_token, migrate

    token_file = tmp_path / "admin-token"
    first_db = f"sqlite:///{tmp_path / 'first.db'}"
    migrate(first_db)
    token = ensure_admin_token(first_db, token_file)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert ensure_admin_token(first_db, token_file) == token

    second_db = f"sqlite:///{tmp_path / 'second.db'}"  # as if the data were wiped
    migrate(second_db)
    replaced = ensure_admin_token(second_db, token_file)
    assert replaced != token and token_file.read_text().strip() == replaced

    token_file.unlink()  # a lost file: its token can never be shown again, so it is replaced
    assert ensure_admin_token(second_db, token_file) not in (token, replaced)


def test_token_create_writes_to_the_service_database(service, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PRUNEBOARD_DATA_DIR", str(service["data_dir"]))
    for name in ("PRUNEBOARD_DATABASE_URL", "PRUNEBOARD_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["token", "create", "--name", "viewer", "--scope", "read"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("pb_")
    assert main(["token", "create", "--name", "viewer", "--scope", "read"]) == 2
    assert "a token named 'viewer' exists already" in capsys.readouterr().err

    config = tmp_path / "job.json"
    config.write_text(json.dumps(SMALL_JOB))
    assert main(["jobs", "--url", service["url"], "--token", token]) == 0
    assert main(["submit", str(config), "--url", service["url"], "--token", token]) == 2
    assert capsys.readouterr().err.strip() == (
        "pruneboard: error: permission denied: this needs a submit token; yours is read")


def test_up_serves_its_data_roots_and_runs_a_job_on_a_named_folder(service, data_root, tmp_path,
                                                                  capsys):
    own = service["data_dir"] / "datasets"
    assert own.is_dir()
    assert f"  data roots:  {own}{os.pathsep}{data_root}\n" in service["log"].read_text()

    headers = {"Authorization": f"Bearer {service['token']}"}
    c10 = {"dataset": "cifar10", "data_dir": "c10", "input_shape": [3, 32, 32],
           "num_classes": 10, "train_size": 40}
    deadline = time.monotonic() + 60
    while True:  # the worker reports its folders with its first heartbeat
        workers = httpx.get(f"{service['url']}/api/v1/workers", headers=headers).json()
        if workers and workers[0]["datasets"]:
            break
        assert time.monotonic() < deadline, f"no datasets reported: {workers}"
        time.sleep(0.25)
    assert workers[0]["datasets"] == [c10]

    config = tmp_path / "cifar.json"
    config.write_text(json.dumps({"model": "cnn-small", "dataset": "cifar10", "data_dir": "c10",
                                  "epochs": 1, "batch_size": 8}))
    assert cli(service, "submit", str(config), "--watch") == 0, capsys.readouterr().err
    assert "succeeded" in capsys.readouterr().out

    # A name no live worker reports is refused at submit, naming the field and no path.
    config.write_text(json.dumps({"model": "cnn-small", "dataset": "cifar10",
                                  "data_dir": "elsewhere"}))
    assert cli(service, "submit", str(config)) == 2
    error = capsys.readouterr().err
    assert "data_dir: " in error and "'elsewhere'" in error and str(data_root) not in error


def test_data_roots_are_dir_datasets_then_the_given_folders(tmp_path, monkeypatch):
    from cli.errors import UsageError
    from cli.up_command import data_roots

    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("PRUNEBOARD_DATA_ROOTS", str(other))
    assert data_roots(tmp_path / "dir", None) == [tmp_path / "dir" / "datasets", other]
    assert (tmp_path / "dir" / "datasets").is_dir()
    assert data_roots(tmp_path / "dir", [other, other, tmp_path / "dir" / "datasets"]) == [
        tmp_path / "dir" / "datasets", other]
    with pytest.raises(UsageError, match="--data-root .*missing: no such folder"):
        data_roots(tmp_path / "dir", [tmp_path / "missing"])
