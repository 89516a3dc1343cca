"""The FastAPI application: `create_app(settings)`; `backend.main:app` for uvicorn."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError

from backend.api import analyses, events, jobs, metrics, system
from backend.api.spec_body import BodyRefused
from backend.settings import Settings, get_settings

API_PREFIX = "/api/v1"
FRONTEND_DIR = Path(__file__).resolve().parents[1] / "frontend"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="Pruneboard", version="0.1.0", docs_url="/docs",
                  openapi_url=f"{API_PREFIX}/openapi.json",
                  description="Structured-pruning jobs: submit, watch, compare.")
    app.state.settings = settings
    for module in (jobs, metrics, events, system, analyses):
        app.include_router(module.router, prefix=API_PREFIX)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(BodyRefused, _body_refused)
    # The backstop for text a database cannot store (PostgreSQL refuses NUL; UTF-8 has no lone
    # surrogates) that reached a query through a field without its own pattern: a 422, not a 500.
    app.add_exception_handler(DataError, _unstorable_text)
    app.add_exception_handler(UnicodeEncodeError, _unstorable_text)
    app.middleware("http")(_limit_body(settings.max_body_bytes))
    app.get("/vendor/plotly.min.js", include_in_schema=False)(_plotly_bundle)
    # Last, so /api and /docs win: the static dashboard on the same origin as the API.
    app.mount("/", StaticFiles(directory=FRONTEND_DIR, html=True), name="frontend")
    return app


def _plotly_bundle() -> FileResponse:
    """Plotly's own bundle from the installed plotly package: nothing vendored, no CDN."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return FileResponse(path, media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})


async def _unstorable_text(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": [{
        "field": "body", "message": "the request holds text that cannot be stored (a NUL byte "
                                    "or an unpaired surrogate)"}]})


async def _body_refused(request: Request, error: BodyRefused) -> JSONResponse:
    """422 with one entry per bad field of a spec-validated body (backend.api.spec_body)."""
    return JSONResponse(status_code=422, content={"detail": error.entries})


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 with one entry per bad query, path or plain-model body field."""
    details = []
    for item in error.errors():
        if item["type"] == "json_invalid":
            details.append({"field": "body", "message": "the body is not valid JSON: "
                            f"{item.get('ctx', {}).get('error', item['msg'])}"})
            continue
        location = [str(part) for part in item["loc"] if part not in ("body", "query", "path")]
        details.append({"field": ".".join(location) or "body",
                        "message": item["msg"].removeprefix("Value error, ")})
    return JSONResponse(status_code=422, content={"detail": details})


def _limit_body(limit: int):
    async def middleware(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return JSONResponse(status_code=413,
                                content={"detail": f"request body over {limit} bytes"})
        if length is None and request.method in ("POST", "PUT", "PATCH"):
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    return JSONResponse(status_code=413,
                                        content={"detail": f"request body over {limit} bytes"})
            request._body = body  # starlette reads the cached body downstream
        return await call_next(request)
    return middleware


def __getattr__(name: str):
    # `uvicorn backend.main:app` builds the app from the environment on first use only, so
    # importing this module (tests, tools) reads no settings.
    if name == "app":
        return create_app()
    raise AttributeError(name)
