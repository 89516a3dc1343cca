import json
import os
import subprocess
import sys

import pytest

from cli.main import main

FAST = ["--mlp-widths", "32,16", "--epochs", "2", "--quiet"]


def read_events(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_train_writes_events_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "events.jsonl"
    assert main(["train", *FAST, "--out", str(out)]) == 0
    events = read_events(out)
    assert events[0]["type"] == "start" and events[-1]["type"] == "end"
    assert events[0]["config"]["mlp_widths"] == [32, 16]
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "FLOPs removed" in printed


def test_flags_override_a_config_file(tmp_path):
    config = tmp_path / "job.yaml"
    config.write_text("model: mlp\nmethod: grda\nepochs: 5\nlr: 0.2\n")
    out = tmp_path / "events.jsonl"
    assert main(["train", "--config", str(config), *FAST, "--out", str(out)]) == 0
    start = read_events(out)[0]
    assert start["config"]["method"] == "grda" and start["config"]["lr"] == 0.2
    assert start["config"]["epochs"] == 2  # the flag wins over the file


def test_bad_input_is_a_message_not_a_traceback(tmp_path, capsys):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("epochs: [1,\n")
    cases = [
        (["--method", "adam"], "invalid method: must be one of sgd, grda, sdprun"),
        (["--dataset", "cifar10", "--data-dir", str(tmp_path)], "expected data_batch_1"),
        (["--config", str(tmp_path / "missing.yaml")], "cannot read config file"),
        (["--config", str(bad_yaml)], "is not valid yaml"),
        (["--resume", str(tmp_path)], "no checkpoint at"),
    ]
    for flags, message in cases:
        assert main(["train", *FAST, *flags]) == 2, flags
        assert message in capsys.readouterr().err


def test_the_installed_command_exits_2_with_one_line():
    result = subprocess.run([sys.executable, "-m", "cli.main", "train", "--epochs", "0"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == "pruneboard: error: invalid epochs: must be in [1, 10000], got 0\n"


def test_a_run_with_a_twin_ends_with_its_valley_numbers(tmp_path, capsys):
    assert main(["train", "--mlp-widths", "32,16", "--epochs", "2", "--lr", "0.5", "--c", "0.02",
                 "--reference", "sgd", "--analyses", "linear", "--quiet",
                 "--checkpoint-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "compact network" in out and "latency cpu batch 64" in out
    assert "linear path: barrier" in out
    assert (tmp_path / "last.pt").is_file()


@pytest.mark.parametrize("argv, line", [
    (["--mu", "1.0"], "invalid mu: must be in (0.0, 1.0), got 1.0"),
    (["--dataset", "synthetic", "--synthetic-shape", "1,8"], "invalid synthetic_shape.2: "),
    (["--model", "resnet20", "--dataset", "cifar10"], "invalid data_dir: dataset cifar10 is read "
                                                      "from a data folder"),
    (["--batch-size", "65536"], "invalid batch_size: must be at most the 1437 training "
                                "samples of digits"),
    (["--momentum", "0.9"], "invalid momentum: is read only by method sgd"),
    (["--model", "resnet20", "--dataset", "cifar10", "--data-dir", "/no/such/folder"],
     "invalid data_dir: cifar10: data directory /no/such/folder does not exist"),
])
def test_what_the_engine_cannot_run_is_one_line_and_exit_2(argv, line):
    result = subprocess.run([sys.executable, "-m", "cli.main", "train", "--epochs", "1", *argv],
                            capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"pruneboard: error: {line}"), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_config_file_gets_no_silent_coercions(tmp_path):
    config = tmp_path / "job.yaml"
    config.write_text("epochs: true\n")
    result = subprocess.run([sys.executable, "-m", "cli.main", "train", "--config", str(config)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == ("pruneboard: error: invalid epochs: input should be a valid "
                             "integer, got True (allowed in [1, 10000])\n")


def test_help_flags_are_the_specs_fields_with_their_description_and_range():
    from pruneboard.spec import JobSpec, allowed_range

    result = subprocess.run([sys.executable, "-m", "cli.main", "train", "--help"],
                            capture_output=True, text=True, check=True, env={
                                **os.environ, "COLUMNS": "10000"})
    # One block per option: its line and the more indented lines below it, joined.
    blocks, current = {}, None
    for row in result.stdout.splitlines():
        if row.startswith("  -"):
            current = row.split()[0].rstrip(",")
            blocks[current] = row
        elif current and row.startswith("    "):
            blocks[current] += " " + row.strip()
    for name, field in JobSpec.model_fields.items():
        block = " ".join(blocks["--" + name.replace("_", "-")].split())
        assert field.description in block, block
        allowed = allowed_range(JobSpec, name)
        assert allowed is None or allowed in block, block


@pytest.mark.parametrize("content, line", [
    (b"\xff\xfe", "is not UTF-8 text (byte 0)"),
    (b"a: [\n", "is not valid yaml: while parsing a flow node"),
    (b"- 1\n", "must hold a mapping of config fields"),
])
def test_a_bad_config_file_is_one_line_and_exit_2(tmp_path, content, line):
    path = tmp_path / "job.yaml"
    path.write_bytes(content)
    result = subprocess.run([sys.executable, "-m", "cli.main", "train", "--config", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and line in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_yaml_numbers_in_exponent_form_are_numbers(tmp_path):
    from cli.train_command import _read_config_file

    path = tmp_path / "job.yaml"
    path.write_text("lr: 5e-3\nc: 1E-3\nmu: .6\nepochs: 10\n")
    assert _read_config_file(path) == {"lr": 0.005, "c": 0.001, "mu": 0.6, "epochs": 10}


def test_an_unwritable_events_file_is_a_message(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cli.main", "train", "--epochs", "1",
                             "--out", str(tmp_path / "missing" / "events.jsonl")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "cannot write" in result.stderr
    assert "Traceback" not in result.stderr
