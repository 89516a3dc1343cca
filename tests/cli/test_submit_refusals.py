"""`pruneboard submit` against a real `pruneboard up`: a config the service cannot run is one
line on stderr with exit 2, never a traceback, and no job is stored."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from embedded import running_up


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with running_up(tmp_path_factory.mktemp("up"), "--no-worker") as stack:
        yield stack


@pytest.mark.parametrize("config, line", [
    ("mu: 1.0\n", "invalid request: mu: must be in (0.0, 1.0), got 1.0"),
    ("model: resnet20\ndataset: cifar10\ndata_dir: /srv/cifar\n",
     "invalid request: data_dir: no live worker has a cifar10 folder named '/srv/cifar'"),
    ("mlp_widths: [65536, 65536]\n", "invalid request: mlp_widths: mlp on this data has "
                                     "4,299,948,042 parameters; this service allows at most "
                                     "100,000,000 (max_model_params)"),
    ("dataset: synthetic\nsynthetic_size: 10000000\n", "invalid request: epochs: 80 epochs"),
    ("batch_size: 65536\n", "invalid request: batch_size: must be at most the 1437"),
    ("epochs: true\n", "invalid request: epochs: input should be a valid integer, got True"),
])
def test_a_refused_submit_is_one_line_and_exit_2(service, tmp_path, config, line):
    path = tmp_path / "job.yaml"
    path.write_text(config)
    env = {**os.environ, "PRUNEBOARD_URL": service["url"], "PRUNEBOARD_TOKEN": service["token"]}
    result = subprocess.run([sys.executable, "-m", "cli.main", "submit", str(path)],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"pruneboard: error: {line}"), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    jobs = httpx.get(f"{service['url']}/api/v1/jobs",
                     headers={"Authorization": f"Bearer {service['token']}"}).json()
    assert jobs["total"] == 0
