"""A job with an SGD twin through a real `celery worker` on PostgreSQL + Redis: the small model is
exported and recorded, the live valley series are stored, and the loss-valley analysis starts by
itself when the job succeeds and runs to its result."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import insert, select

from backend.models import Analysis, Artifact
from backend.queue import RUN_ANALYSIS_TASK

# lr and c high enough that groups are pruned within 3 epochs.
TWIN_JOB = {"model": "mlp", "mlp_widths": [32, 16], "epochs": 3, "log_interval": 5, "lr": 0.5,
            "c": 0.02, "reference": "sgd", "valley_interval": 1,
            "analyses": ["linear", "hessian"]}


def analyses_of(pg, job_id):
    with pg.engine.connect() as connection:
        return connection.execute(select(Analysis.__table__).where(Analysis.job_id == job_id)
                                  .order_by(Analysis.id)).all()


def test_a_twin_job_exports_its_small_model_and_analyses_its_valley(pg, pg_worker, enqueue,
                                                                    wait_for):
    workers, env = pg_worker
    job_id = pg.create_job(TWIN_JOB)
    enqueue(env, job_id)
    job = pg.wait_status(job_id, ("succeeded", "failed"), timeout=180, workers=workers)
    assert job.status == "succeeded", job.error

    keys = {key for key, _, _ in pg.points(job_id)}
    assert {"reference_train_loss", "reference_test_accuracy", "valley_barrier",
            "valley_path/0.00", "valley_path/1.00"} <= keys
    compact = job.summary["compact"]
    assert compact["compact_test_accuracy"] == compact["pruned_test_accuracy"]
    assert compact["compact_params"] < compact["dense_params"]
    assert any("compact network:" in line for line in pg.logs(job_id))

    with pg.engine.connect() as connection:
        artifacts = connection.execute(select(Artifact.__table__).where(
            Artifact.job_id == job_id)).all()
    assert {a.name for a in artifacts} >= {"model.safetensors", "model.json", "model.pt"}
    folder = Path(env["PRUNEBOARD_DATA_DIR"]) / "artifacts" / "jobs" / str(job_id) / "export"
    for artifact in artifacts:
        content = (folder / artifact.name).read_bytes()
        assert hashlib.sha256(content).hexdigest() == artifact.sha256
        assert len(content) == artifact.bytes

    wait_for(lambda: [a.status for a in analyses_of(pg, job_id)] in (["succeeded"], ["failed"]),
             timeout=180, what="the automatic analysis", details=workers.output)
    [analysis] = analyses_of(pg, job_id)
    assert analysis.status == "succeeded", analysis.error
    assert analysis.progress == 1.0 and analysis.reference_job_id is None
    result = analysis.result
    assert set(result) >= {"linear", "hessian"} and "plane" not in result
    linear = result["linear"]
    assert len(linear["t"]) == 41 and linear["t"][0] == 0 and linear["t"][-1] == 1
    assert linear["barrier"] >= 0
    # t = 1 is the pruned network itself: its test accuracy is the job's.
    assert linear["test_accuracy"][-1] == job.summary["test_accuracy"]
    hessian = result["hessian"]
    assert len(hessian["eigenvalues"]) == 10 and 0 <= hessian["fraction"] <= 1


def test_an_analysis_whose_reference_left_no_weights_fails_with_the_reason(pg, pg_worker,
                                                                          enqueue, wait_for):
    workers, env = pg_worker
    pruned = pg.create_job({**TWIN_JOB, "epochs": 1, "valley_interval": 0, "analyses": []})
    enqueue(env, pruned)
    assert pg.wait_status(pruned, ("succeeded", "failed"), timeout=120,
                          workers=workers).status == "succeeded"
    # Succeeded on paper only: this reference never ran, so it has no checkpoint.
    ghost = pg.create_job({"model": "mlp", "mlp_widths": [32, 16], "method": "sgd"},
                          status="succeeded")
    with pg.engine.begin() as connection:
        analysis_id = connection.scalar(insert(Analysis).values(
            job_id=pruned, reference_job_id=ghost, options={"kinds": ["linear"]},
            status="queued", progress=0.0).returning(Analysis.id))
    enqueue(env, analysis_id, RUN_ANALYSIS_TASK)
    wait_for(lambda: analyses_of(pg, pruned)[-1].status in ("succeeded", "failed"), timeout=60,
             what="the analysis to end", details=workers.output)
    analysis = analyses_of(pg, pruned)[-1]
    assert analysis.status == "failed"
    assert "reference run left no checkpoint" in analysis.error
    assert analysis.result is None
