"""The API against its own OpenAPI document: schemathesis generates requests for every operation
(the schema's boundary values, then random valid and invalid ones) and checks that none is a
server error, that every status code and content type is documented, and that every body matches
its documented schema; on both databases, with an admin token, against jobs that exist. The
generation is deterministic: the same requests every run.

Schemathesis runs through its engine (what `st run` uses), in process against the ASGI app: its
pytest integration does not work with pytest 9.2. The two event streams (GET /jobs/{id}/events,
GET /events) are left out: they end only when the client goes away; their own tests cover them.
Also here: the document declares the security schemes and the API's own error shapes, and /docs
works offline.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events
from schemathesis.engine import from_schema as engine_for
from schemathesis.python.asgi import shutdown_lifespans
from sqlalchemy import update

from backend.db import session_scope
from backend.main import create_app
from backend.models import Job, utcnow
from backend.services.ingest import insert_points
from backend.services.jobs import add_log, create_job
from pruneboard.status import JobStatus

OPENAPI = "/api/v1/openapi.json"
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance")
EXAMPLES = 20  # per operation and phase, on each database: the module stays within minutes
STREAMS = r"/events$"


@pytest.fixture
def job_ids(settings) -> list[int]:
    """A queued job, a running one with points and logs, a finished one and a failed one: the
    path ids generated are mapped onto these, so the operations reach past their 404."""
    ids = []
    with session_scope(settings.resolved_database_url) as session:
        for status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED,
                       JobStatus.FAILED):
            job = create_job(session, owner="fuzz", config={"model": "mlp", "dataset": "digits",
                                                            "method": "sdprun", "epochs": 1},
                             name=f"fuzz {status}", tags=["fuzz"])
            ids.append(job.id)
            if status != JobStatus.QUEUED:
                session.execute(update(Job).where(Job.id == job.id).values(
                    status=status, started_at=utcnow(),
                    finished_at=None if status == JobStatus.RUNNING else utcnow()))
        insert_points(session, ids[1], [("loss", step, 1.0 / (step + 1), 0.0)
                                        for step in range(50)])
        add_log(session, ids[1], "step 49")
    return ids


def fuzz(settings, headers: dict[str, str], job_ids: list[int]) -> tuple[list[str], Counter]:
    """What failed, and how often each operation answered each status, over every operation
    but the streams."""
    config = SchemathesisConfig.from_dict({
        "seed": 0,
        "headers": headers,
        "workers": 1,
        "continue-on-failure": True,
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none",
                       # The admin token goes with every request: no generated credentials.
                       "with-security-parameters": False},
        "phases": {"stateful": {"enabled": False}},
    })
    schema = schemathesis.openapi.from_asgi(OPENAPI, create_app(settings), config=config)
    schema = schema.exclude(path_regex=STREAMS)

    @schema.hook
    def map_case(context, case):
        job_id = (case.path_parameters or {}).get("job_id")
        if isinstance(job_id, int) and not isinstance(job_id, bool) and job_id >= 1:
            case.path_parameters["job_id"] = job_ids[job_id % len(job_ids)]
        return case

    found, answered = [], Counter()
    try:
        for event in engine_for(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                answered.update((event.recorder.label, interaction.response.status_code)
                                for interaction in event.recorder.interactions.values()
                                if interaction.response is not None)
                if event.status == Status.FAILURE:
                    found.extend(_failures(event.recorder))
            elif isinstance(event, events.NonFatalError | events.FatalError):
                found.append(f"{getattr(event, 'label', 'engine')}: error "
                             f"{getattr(event, 'value', getattr(event, 'exception', None))!r}")
    finally:
        shutdown_lifespans()
    return sorted(set(found)), answered


def _failures(recorder) -> list[str]:
    return [f"{recorder.label}: {check.failure_info.failure.title}\n"
            f"{check.failure_info.failure.message}\n{check.failure_info.code_sample}"
            for checks in recorder.checks.values() for check in checks
            if check.status == Status.FAILURE and check.failure_info is not None]


def test_every_operation_keeps_to_its_documented_responses(settings, make_token, job_ids):
    found, answered = fuzz(settings, make_token("admin"), job_ids)
    assert not found, "\n\n".join(found)
    # Every phase ran, and the generated requests reached past the 404 of a missing job.
    assert answered.total() > 1000, answered
    for label in ("GET /api/v1/jobs/{job_id}/metrics", "POST /api/v1/jobs/{job_id}/cancel",
                  "POST /api/v1/jobs", "GET /api/v1/jobs"):
        assert answered[label, 200 if label != "POST /api/v1/jobs" else 201], (label, answered)


def test_the_document_declares_security_and_one_error_shape(client):
    document = client.get(OPENAPI).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["session"]["in"] == "cookie"
    assert schemes["session"]["name"] == "pruneboard_session"
    shapes = document["components"]["schemas"]
    assert "HTTPValidationError" not in shapes and "ValidationError" not in shapes
    assert shapes["ErrorOut"]["properties"]["detail"]["type"] == "string"
    paths = document["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if "422" in responses:
                assert responses["422"]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ValidationErrorOut"}, (method, path)
            if operation.get("security"):
                assert "401" in responses, (method, path)
    assert paths["/api/v1/jobs"]["get"]["security"] == [{"bearer": []}, {"session": []}]
    assert "security" not in paths["/api/v1/healthz"]["get"]
    assert paths["/api/v1/session"]["post"]["security"] == []  # the token is in its body


def test_what_wants_a_token_says_so(client, make_token):
    """Every operation, called without credentials: a 401 exactly where the document declares
    a security requirement (and documents the 401)."""
    job_id = client.post("/api/v1/jobs", headers=make_token(), json={"epochs": 1}).json()["id"]
    document = client.get(OPENAPI).json()
    for path, operations in document["paths"].items():
        url = path.replace("{job_id}", str(job_id)).replace("{name}", "x")
        for method, operation in operations.items():
            status = client.request(method, url).status_code
            secured = bool(operation.get("security"))
            assert (status == 401) == secured, (method, path, status)
            assert not secured or "401" in operation["responses"], (method, path)


def test_swagger_ui_is_served_from_the_installed_package(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", page.text), page.text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200 and response.content, asset
    assert "/api/v1/openapi.json" in page.text
    assert client.get("/redoc").status_code == 404  # ReDoc would need a CDN
