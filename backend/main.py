"""The FastAPI application: `create_app(settings)`; `backend.main:app` for uvicorn."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException

from backend.api import analyses, events, jobs, metrics, models, system
from backend.api.spec_body import BodyRefused
from backend.openapi import document, install_docs
from backend.queue import DispatchLoop
from backend.schemas import NO_NUL
from backend.services.stream_hub import stop_hub
from backend.settings import Settings, get_settings

API_PREFIX = "/api/v1"
FRONTEND_DIR = Path(__file__).resolve().parents[1] / "frontend"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # docs_url None: backend.openapi serves Swagger UI from the installed package, no CDN.
    app = FastAPI(title="Pruneboard", version="0.1.0", docs_url=None, redoc_url=None,
                  openapi_url=f"{API_PREFIX}/openapi.json",
                  description="Structured-pruning jobs: submit, watch, compare.",
                  lifespan=_lifespan)
    app.state.settings = settings
    for module in (jobs, metrics, events, system, analyses, models):
        app.include_router(module.router, prefix=API_PREFIX)
    document(app)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(BodyRefused, _body_refused)
    # The backstop for text a database cannot store (PostgreSQL refuses NUL; UTF-8 has no lone
    # surrogates) that reached a query through a field without its own pattern: a 422, not a 500.
    app.add_exception_handler(DataError, _unstorable_text)
    app.add_exception_handler(UnicodeEncodeError, _unstorable_text)
    # Model uploads carry weights: their own, larger limit.
    app.add_middleware(_BodyLimit, limit=settings.max_body_bytes,
                       larger={f"{API_PREFIX}/models": settings.max_model_upload_bytes})
    app.get("/vendor/plotly.min.js", include_in_schema=False)(_plotly_bundle)
    install_docs(app)
    # Last, so /api and /docs win: the static dashboard on the same origin as the API.
    app.mount("/", StaticFiles(directory=FRONTEND_DIR, html=True), name="frontend")
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # What the imports built (~170k objects) lives as long as the process: kept out of the
    # full collections, whose pauses otherwise stall every request (~200 ms with 200 open
    # streams, bench/stream_load.py). Once per process: a test's apps start many times.
    if not gc.get_freeze_count():
        gc.freeze()
    # Sends the run messages a request could not (the broker was down) and those lost in a
    # broker restart (backend.queue); every worker runs one too.
    dispatcher = DispatchLoop(app.state.settings).start()
    try:
        yield
    finally:
        dispatcher.stop()
        await stop_hub(app)  # the event streams' poller starts with its first stream


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
    """422 with one entry per bad query, path, header, cookie or plain-model body field."""
    details = []
    for item in error.errors():
        if item["type"] == "json_invalid":
            details.append({"field": "body", "message": "the body is not valid JSON: "
                            f"{item.get('ctx', {}).get('error', item['msg'])}"})
            continue
        location = [str(part) for part in item["loc"]
                    if part not in ("body", "query", "path", "header", "cookie")]
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "string_pattern_mismatch" and item["ctx"]["pattern"] == NO_NUL:
            message = "must not contain NUL bytes"
        details.append({"field": ".".join(location) or "body", "message": message})
    return JSONResponse(status_code=422, content={"detail": details})


# What FastAPI answers (400) for a body it cannot even decode, such as bytes that are not UTF-8.
_UNPARSED_BODY = "There was an error parsing the body"


async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    """FastAPI's own answer, except that an undecodable body is a 422 like any bad body."""
    if error.status_code == 400 and error.detail == _UNPARSED_BODY:
        return JSONResponse(status_code=422, content={"detail": [{
            "field": "body", "message": "the body is not valid JSON: it is not UTF-8 text"}]})
    return await http_exception_handler(request, error)


class _BodyLimit:
    """413 for a request body over ``limit`` bytes, by its Content-Length or, without one, by
    counting the chunks as they arrive. Plain ASGI, not ``@app.middleware``: Starlette's
    BaseHTTPMiddleware re-wraps every chunk of every response, which costs the long-lived
    event streams CPU for nothing."""

    def __init__(self, app, limit: int, larger: dict[str, int] | None = None):
        self.app, self.limit, self.larger = app, limit, larger or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.larger.get(scope["path"].rstrip("/"), self.limit)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return await self._refuse(scope, receive, send, limit)
        if length is not None or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        # A chunked body: read it all (it is at most the limit) and hand it on as one message.
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                return await self._refuse(scope, receive, send, limit)
        delivered = False

        async def replay():
            nonlocal delivered
            if delivered:
                return await receive()  # only a disconnect can follow
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send, limit: int):
        response = JSONResponse(status_code=413,
                                content={"detail": f"request body over {limit} bytes"})
        await response(scope, receive, send)


def __getattr__(name: str):
    # `uvicorn backend.main:app` builds the app from the environment on first use only, so
    # importing this module (tests, tools) reads no settings.
    if name == "app":
        return create_app()
    raise AttributeError(name)
