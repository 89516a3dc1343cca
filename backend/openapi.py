"""The OpenAPI document as the API really behaves, and Swagger UI served offline.

The document declares how a caller authenticates (a bearer token, or the browser's session
cookie) on every operation that can answer 401, so Swagger's Authorize button works;
every 422 is the API's own shape (backend.schemas.ValidationErrorOut), not FastAPI's default.
Swagger UI's files come from the installed swagger-ui-bundle package: /docs works without
network access.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import swagger_ui_bundle
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from backend.api import deps
from backend.schemas import ValidationErrorOut

DOCS_URL = "/docs"
STATIC_URL = "/docs/static"
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "pb_<key>_<secret>",
               "description": "an API token (`pruneboard token create`, or POST /tokens)"},
    "session": {"type": "apiKey", "in": "cookie", "name": deps.COOKIE_NAME,
                "description": "a browser session id, set by POST /session"},
}
_COMPONENT = "#/components/schemas/"


def install_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the installed package (call before any catch-all mount)."""
    app.mount(STATIC_URL, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
              name="swagger-ui")

    def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} API",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon-32x32.png",
            # No validator badge: it is an image from swagger.io.
            swagger_ui_parameters={"persistAuthorization": True, "validatorUrl": None})

    app.get(DOCS_URL, include_in_schema=False)(docs)


def document(app: FastAPI) -> None:
    """Replace ``app.openapi`` by FastAPI's document with our security and error shapes."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _amend(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _amend(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    shapes = components.setdefault("schemas", {})
    error = ValidationErrorOut.model_json_schema(ref_template=_COMPONENT + "{model}")
    shapes.update(error.pop("$defs", {}))
    shapes.setdefault(ValidationErrorOut.__name__, error)
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            # An operation that can answer 401 reads the caller's token, unless it says
            # otherwise (POST /session checks a token in its body: security []).
            if "401" in operation.get("responses", {}):
                operation.setdefault("security", [{"bearer": []}, {"session": []}])
            _own_422(operation)
    for name in ("HTTPValidationError", "ValidationError"):
        shapes.pop(name, None)
    return schema


def _own_422(operation: dict[str, Any]) -> None:
    """FastAPI adds its default 422 to every operation with parameters: ours instead."""
    response = operation.get("responses", {}).get("422")
    content = (response or {}).get("content", {}).get("application/json", {})
    if content.get("schema", {}).get("$ref") == _COMPONENT + "HTTPValidationError":
        content["schema"] = {"$ref": _COMPONENT + ValidationErrorOut.__name__}
        response["description"] = "a field of the body, query, path, header or cookie is refused"
