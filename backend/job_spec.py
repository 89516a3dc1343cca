"""The job-submission schema, built from the engine's config spec (backend/job_config_spec.json).

Every engine field becomes an optional body field with the engine's default, bounds and choices,
so `POST /jobs` takes exactly the `pruneboard train` flags by the same names, and a bad value is
refused here, before anything is stored or queued.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, field_validator

SPEC_PATH = Path(__file__).with_name("job_config_spec.json")
# Set by the worker, never by a client: paths on the worker host.
SERVER_FIELDS = {"checkpoint_dir", "export_dir"}
_TYPES = {"str": str, "int": int, "float": float, "bool": bool,
          "list[int]": list[int], "list[float]": list[float], "list[str]": list[str]}


@lru_cache
def load_spec() -> list[dict[str, Any]]:
    return json.loads(SPEC_PATH.read_text())


def spec_by_name() -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in load_spec()}


def allowed_range(field: dict[str, Any]) -> str | None:
    if field["choices"]:
        return "one of " + ", ".join(field["choices"])
    if field["low"] is None:
        return None
    left = "(" if field["open_low"] else "["
    return f"in {left}{field['low']}, {field['high']}]"


class _JobBase(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)

    name: Annotated[str | None, Field(max_length=200, description="a label for lists")] = None
    tags: Annotated[list[Annotated[str, Field(min_length=1, max_length=50)]],
                    Field(max_length=20, description="free-form tags to filter by")] = []

    def engine_config(self) -> dict[str, Any]:
        return self.model_dump(exclude={"name", "tags"})


def _field(spec: dict[str, Any]):
    kind = _TYPES[spec["type"]]
    is_list = spec["type"].startswith("list[")
    if spec["choices"]:
        choice = Literal[tuple(spec["choices"])]
        kind = list[choice] if is_list else choice
    allowed = allowed_range(spec)
    constraints: dict[str, Any] = {"description": f"{spec['help']} ({allowed})" if allowed
                                   else spec["help"]}
    bounds = {}
    if spec["low"] is not None:
        bounds = {"gt" if spec["open_low"] else "ge": spec["low"], "le": spec["high"]}
    if is_list:
        if bounds:
            kind = list[Annotated[_TYPES[spec["type"][5:-1]], Field(**bounds)]]
        constraints["max_length"] = 64
    else:
        constraints.update(bounds)
    if spec.get("at_least"):
        constraints["validate_default"] = True  # prune_end's default may sit below prune_start
    if spec["nullable"]:
        kind = kind | None
    if kind is str or kind == str | None:
        constraints["max_length"] = 500
    return Annotated[kind, Field(**constraints)], spec["default"]


def _only_for_method(value: Any, info: ValidationInfo) -> Any:
    spec = spec_by_name()[info.field_name]
    method = info.data.get("method")
    if value != spec["default"] and method is not None and method != spec["only_for_method"]:
        raise ValueError(f"applies only to method {spec['only_for_method']}; {method} takes "
                         f"the default {spec['default']}")
    return value


def _requires(value: Any, info: ValidationInfo) -> Any:
    spec = spec_by_name()[info.field_name]
    rule = spec["requires"]
    other = info.data.get(rule["field"])
    if value != spec["default"] and other is not None and other not in rule["one_of"]:
        raise ValueError(f"needs {rule['field']} to be one of {', '.join(rule['one_of'])} "
                         f"(it is {other}); leave {info.field_name} at {spec['default']}")
    return value


def _at_least(value: Any, info: ValidationInfo) -> Any:
    other = spec_by_name()[info.field_name]["at_least"]
    low = info.data.get(other)
    if low is not None and value is not None and value < low:
        raise ValueError(f"must be at least {other} ({low}), got {value}")
    return value


@lru_cache
def job_create_model() -> type[_JobBase]:
    specs = [spec for spec in load_spec() if spec["name"] not in SERVER_FIELDS]
    restricted = [spec["name"] for spec in specs if spec.get("only_for_method")]
    cross_field = [spec["name"] for spec in specs if spec.get("requires")]
    # field_validator needs at least one field name; a spec may have no rule of a kind.
    validators = {}
    if restricted:
        validators["only_for_method"] = field_validator(*restricted)(_only_for_method)
    if cross_field:
        validators["requires"] = field_validator(*cross_field)(_requires)
    ordered = [spec["name"] for spec in specs if spec.get("at_least")]
    if ordered:
        validators["at_least"] = field_validator(*ordered)(_at_least)
    fields = {spec["name"]: _field(spec) for spec in specs}
    return create_model("JobCreate", __base__=_JobBase, __validators__=validators, **fields)
