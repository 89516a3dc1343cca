"""Presets that run: with a data root holding CIFAR-10 and CIFAR-100 folders, every preset the
form offers is available, its config is accepted by POST /jobs as the form sends it, and a real
worker starts it (`pruneboard up`: API, worker process, SQLite, file-system broker)."""

from __future__ import annotations

import httpx
import pytest
from cifar_files import write_cifar10, write_cifar100
from embedded import running_up
from processes import wait_for


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("data-root")
    write_cifar10(root / "cifar10" / "cifar-10-batches-py", per_batch=13)
    write_cifar100(root / "cifar100" / "cifar-100-python", train=65, test=5)
    with running_up(tmp_path_factory.mktemp("up"), "--data-root", str(root),
                    OMP_NUM_THREADS="1") as running:
        yield running


def log_tail(log) -> str:
    return "\n".join([line for line in log.read_text().splitlines()
                      if "HTTP/1.1" not in line][-40:])


def test_every_preset_is_accepted_and_starts_on_a_worker(stack):
    api = httpx.Client(base_url=f"{stack['url']}/api/v1",
                       headers={"Authorization": f"Bearer {stack['token']}"}, timeout=30)

    def folders():
        workers = api.get("/workers").json()
        return {(f["dataset"], f["data_dir"]) for w in workers for f in w["datasets"]}

    wait_for(lambda: {("cifar10", "cifar10"), ("cifar100", "cifar100")} <= folders(),
             timeout=60, what="the worker to report its data folders", interval=0.5,
             details=lambda: log_tail(stack["log"]))
    presets = api.get("/config-spec").json()["presets"]
    assert [p["id"] for p in presets if not p["available"]] == []
    # The fine-tuning presets go on top of a pushed model (tests/worker/test_pushed_models.py).
    for preset in [p for p in presets if not p.get("overlay")]:
        response = api.post("/jobs", json=preset["values"])
        assert response.status_code == 201, (preset["id"], response.text)
        job_id = response.json()["id"]

        def started(job_id=job_id):
            job = api.get(f"/jobs/{job_id}").json()
            assert job["status"] in ("queued", "running"), job["error"]
            return job["status"] == "running" and job["total_steps"]

        wait_for(started, timeout=240, what=f"preset {preset['id']} to start", interval=0.5,
                 details=lambda job_id=job_id: f"{api.get(f'/jobs/{job_id}').json()}\n"
                                               f"{log_tail(stack['log'])}")
        # Started is what this shows; the rest of a 160-epoch run is not for a 2-core CI.
        assert api.post(f"/jobs/{job_id}/cancel").status_code == 200
        # The digits demo may finish before the cancel reaches it.
        wait_for(lambda job_id=job_id: api.get(f"/jobs/{job_id}").json()["status"] in (
                 "cancelled", "succeeded"), timeout=240, what=f"preset {preset['id']} to stop",
                 interval=0.5, details=lambda: log_tail(stack["log"]))
