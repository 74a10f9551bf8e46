"""JSON Schemas of the input and output topics (the published contract)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import orjson
from jsonschema import Draft202012Validator

__all__ = ["SCHEMA_NAMES", "load_schema", "validate"]

SCHEMA_NAMES = ("chat_event", "block", "alert", "archive", "dlq", "replay")


@cache
def load_schema(name: str) -> dict[str, Any]:
    if name not in SCHEMA_NAMES:
        raise KeyError(name)
    data: dict[str, Any] = orjson.loads(
        resources.files(__package__).joinpath(f"{name}.schema.json").read_bytes()
    )
    return data


@cache
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(name))


def validate(name: str, record: Any) -> None:
    """Raise ``jsonschema.ValidationError`` when ``record`` breaks schema ``name``."""
    _validator(name).validate(record)
