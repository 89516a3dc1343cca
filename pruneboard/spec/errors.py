"""Refusals as data: one entry per bad field, naming it, saying what is wrong and what is allowed.

The API answers 422 with these entries, the CLI prints the first as one line, and the engine
raises ``SpecError`` (a ValueError) for a config built in Python.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError


class SpecError(ValueError):
    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        self.field = errors[0]["field"]
        self.message = errors[0]["message"]
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))

    @classmethod
    def of(cls, error: ValidationError, model: type[BaseModel]) -> SpecError:
        return cls(describe(error, model))

    @classmethod
    def single(cls, field: str, message: str) -> SpecError:
        return cls([{"field": field, "message": message}])


def refuse(problems: list[tuple[str, str]], title: str = "JobSpec") -> None:
    """Raise one ValidationError holding every (field, message), each located at its field."""
    if problems:
        raise ValidationError.from_exception_data(title, [
            InitErrorDetails(type=PydanticCustomError("rule", message), loc=tuple(field.split(".")),
                             input=None) for field, message in problems])


def describe(error: ValidationError, model: type[BaseModel]) -> list[dict[str, str]]:
    """One entry per error of validating ``model``, with the field's allowed values."""
    from pruneboard.spec.schema import allowed_range

    return [_entry(item, lambda name: allowed_range(model, name))
            for item in error.errors(include_url=False)]


# Pydantic's range and choice errors, reworded as "must be <allowed>, got <value>".
_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal",
                 "literal_error", "enum", "finite_number"}
_TYPE_ERRORS = {"int_type", "int_from_float", "float_type", "bool_type", "string_type",
                "tuple_type", "list_type", "int_parsing", "float_parsing"}


def _entry(item: dict[str, Any], allowed_range) -> dict[str, str]:
    location = [str(part) for part in item["loc"]]
    kind = item["type"]
    if kind == "json_invalid":
        return {"field": "body", "message": f"the body is not valid JSON: {item['ctx']['error']}"}
    field = ".".join(location) or "body"
    message = item["msg"].removeprefix("Value error, ")
    allowed = allowed_range(location[0]) if location else None
    if len(location) > 1 and allowed:
        allowed = allowed.removeprefix("each ")  # the message is about one item
    if kind == "extra_forbidden":
        message = "unknown field"
    elif kind in _RANGE_ERRORS and allowed:
        message = f"must be {allowed}, got {_shown(item.get('input'))}"
    elif kind in _TYPE_ERRORS:
        message = f"{message[0].lower()}{message[1:]}, got {_shown(item.get('input'))}"
    entry = {"field": field, "message": message}
    if allowed and kind != "rule":
        entry["allowed"] = allowed
    return entry


def one_line(entry: dict[str, str]) -> str:
    """``field: message (allowed …)``, the allowed values only where the message lacks them."""
    allowed = entry.get("allowed")
    shown = f" (allowed {allowed})" if allowed and allowed not in entry["message"] else ""
    return f"{entry['field']}: {entry['message']}{shown}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
