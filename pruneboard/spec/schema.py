"""The spec as JSON for clients: JSON Schema of the job and analysis bodies, ranges in words,
and the document ``GET /config-spec`` serves, from which the New-job form builds itself."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel

from pruneboard.spec import catalog
from pruneboard.spec.analysis import AnalysisRequest
from pruneboard.spec.job import SECTIONS, SERVER_FIELDS, JobSubmission
from pruneboard.spec.presets import FINE_TUNE_PRESETS, PRESETS, preset_document
from pruneboard.spec.service import ANALYSIS_LIMITS, ServiceContext, ServiceLimits


@cache
def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def client_job_schema() -> dict[str, Any]:
    """The job body's JSON Schema without the fields only a worker sets."""
    schema = dict(model_schema(JobSubmission))
    schema["properties"] = {name: prop for name, prop in schema["properties"].items()
                            if name not in SERVER_FIELDS}
    return schema


def property_schema(model: type[BaseModel], name: str) -> dict[str, Any] | None:
    prop = model_schema(model).get("properties", {}).get(name)
    if prop is None:
        return None
    # `X | None` is anyOf [X, null]: the range is X's.
    for option in prop.get("anyOf", []):
        if option.get("type") != "null":
            return {**option, **{k: v for k, v in prop.items() if k != "anyOf"}}
    return prop


def allowed_range(model: type[BaseModel], name: str) -> str | None:
    """The field's allowed values in words: "one of a, b", "in (0, 1)", "each in [1, 64]"."""
    prop = property_schema(model, name)
    if prop is None:
        return None
    if prop.get("type") == "array":
        items = prop.get("items") or (prop.get("prefixItems") or [{}])[0]
        inner = _range_of(items)
        return f"each {inner}" if inner else None
    return _range_of(prop)


def _range_of(prop: dict[str, Any]) -> str | None:
    if "enum" in prop:
        return "one of " + ", ".join(map(str, prop["enum"]))
    if "const" in prop:
        return f"exactly {prop['const']}"
    low = prop.get("minimum", prop.get("exclusiveMinimum"))
    high = prop.get("maximum", prop.get("exclusiveMaximum"))
    if low is None or high is None:
        return None
    left = "(" if "exclusiveMinimum" in prop else "["
    right = ")" if "exclusiveMaximum" in prop else "]"
    return f"in {left}{low}, {high}{right}"


def analysis_schema(limits: ServiceLimits) -> dict[str, Any]:
    """The analysis body's schema with this service's limits as the maximums, so a client
    reads the range it will be held to."""
    schema = dict(model_schema(AnalysisRequest))
    properties = dict(schema["properties"])
    for name in ANALYSIS_LIMITS:
        limit = getattr(limits, f"max_{name}")
        properties[name] = {**properties[name],
                            "maximum": min(properties[name]["maximum"], limit)}
    schema["properties"] = properties
    return schema


def config_document(service: ServiceContext | None = None) -> dict[str, Any]:
    """Everything the form needs: the schema, its sections, this service's limits, the datasets
    its live workers can read, and the presets with whether each can run here."""
    service = service or ServiceContext()
    limits = service.limits
    return {
        "schema": client_job_schema(),
        "sections": list(SECTIONS),
        "analysis_schema": analysis_schema(limits),
        "limits": {name: {"value": getattr(limits, name), "help": field.description}
                   for name, field in ServiceLimits.model_fields.items()},
        "datasets": {
            "builtin": list(catalog.BUILTIN_DATASETS),
            "folders": [folder.model_dump(mode="json") for folder in service.folders],
        },
        "presets": [preset_document(preset, service) for preset in PRESETS + FINE_TUNE_PRESETS],
        # Pushed models that are ready, for the form's model choice (name, version, input shape).
        "models": [model.model_dump(mode="json") for model in service.models],
    }
