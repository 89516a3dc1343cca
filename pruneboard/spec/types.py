"""The value types of the spec: strict (no silent coercions), bounded, and free of NUL bytes."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, StrictFloat, StrictInt, StrictStr
from pydantic_core import PydanticCustomError

from pruneboard.spec.catalog import NAME_PATTERN

INT64_MAX = 2**63 - 1


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise PydanticCustomError("nul_byte", "must not contain NUL bytes")
    return text


# The JSON Schema says it too (clients, the form and API fuzzers read it); the validator words
# the refusal.
NO_NUL = r"^[^\x00]*$"


def text(max_length: int) -> Any:
    """A string of at most ``max_length`` characters without NUL bytes."""
    return Annotated[StrictStr, Field(max_length=max_length, json_schema_extra={"pattern": NO_NUL}),
                     AfterValidator(_no_nul)]


def integer(low: int, high: int) -> Any:
    return Annotated[StrictInt, Field(ge=low, le=high)]


def number(low: float, high: float, *, open_low: bool = False, open_high: bool = False) -> Any:
    """A finite real in the range; ints are numbers too (JSON has one number type)."""
    bounds = {"gt" if open_low else "ge": low, "lt" if open_high else "le": high}
    return Annotated[StrictFloat, Field(allow_inf_nan=False, **bounds)]


Identifier = Annotated[StrictStr, Field(min_length=1, max_length=200,
                                        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")]

# A model or dataset name: a built-in one, a pushed model's or a plugin's (catalog.NAME_PATTERN).
Name = Annotated[StrictStr, Field(min_length=1, max_length=64,
                                  pattern=NAME_PATTERN)]
