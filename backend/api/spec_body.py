"""Request bodies validated by the one job spec, with the service's context.

FastAPI cannot hand a validation context to a body model, and the spec's service rules need one
(the data folders live workers report, the limits), so these routes read the raw body and
validate it here; the OpenAPI document still shows the spec's schema. A refusal is a 422 with one
entry per bad field: ``{"field", "message", "allowed"?}``.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from backend.services.models import ready_models
from backend.services.workers import live_dataset_folders, live_plugin_names
from backend.settings import Settings
from pruneboard.spec import DatasetFolder, ServiceContext, describe
from pruneboard.spec.schema import model_schema

Model = TypeVar("Model", bound=BaseModel)


class BodyRefused(Exception):
    def __init__(self, entries: list[dict[str, str]]):
        super().__init__(entries)
        self.entries = entries


async def _raw_body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(_raw_body)]


def service_context(session: Session, settings: Settings) -> ServiceContext:
    folders = tuple(DatasetFolder.model_validate(f)
                    for f in live_dataset_folders(session, settings))
    plugin_models, plugin_datasets = live_plugin_names(session, settings)
    return ServiceContext(folders=folders, limits=settings.limits,
                          models=ready_models(session), plugin_models=tuple(plugin_models),
                          plugin_datasets=tuple(plugin_datasets))


def validate_body(model: type[Model], raw: bytes, context: ServiceContext,
                  *, empty_ok: bool = False) -> Model:
    if empty_ok and not raw.strip():
        raw = b"{}"
    try:
        return model.model_validate_json(raw, context={"service": context})
    except ValidationError as error:
        raise BodyRefused(describe(error, model)) from None


def documented_body(schema: dict[str, Any] | type[BaseModel], *, required: bool = True) -> dict:
    """``openapi_extra`` that shows the spec's schema as the route's request body."""
    if not isinstance(schema, dict):
        schema = model_schema(schema)
    return {"requestBody": {"required": required,
                            "content": {"application/json": {"schema": schema}}}}
