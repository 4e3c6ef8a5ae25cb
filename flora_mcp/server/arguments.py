"""Shared tool parameters: one definition per kind of value, so every tool describes it the same way.

Descriptions say where a value comes from; patterns and enums come from the FLORA contract.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .._ids import PROJECT_ID_PATTERN, RUN_ID_PATTERN, WORKSPACE_ID_PATTERN, GenerationType
from ..config import MAX_WAIT_SECONDS
from .chaining import as_input_item, as_value


class ToolArgs(BaseModel):
    """Base of every tool's request model: unknown arguments are refused (with the allowed list).

    defer_build: validators are built on a tool's first call; at start-up the published schemas
    come from schemas.json (checked against these models by tests/test_schema_snapshot.py).
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)


_QUOTES = "\"'`“”‘’"


def bare(value: Any) -> Any:
    """An ID as pasted from a transcript: surrounding whitespace and quotes ('"run_…"') are noise."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text


WorkspaceParam = Annotated[
    Annotated[str, Field(pattern=WORKSPACE_ID_PATTERN), BeforeValidator(bare)] | None,
    Field(description="From list_workspaces"),
]
ProjectParam = Annotated[
    Annotated[str, Field(pattern=PROJECT_ID_PATTERN), BeforeValidator(bare)] | None,
    Field(description="From list_projects; sets the workspace"),
]
# Where a paid start takes a project, its exact name works too (resolved across the key's workspaces,
# and the answer gives the ID): no pattern, so a client that validates arguments lets the name through.
def _project_ref(value: str) -> str:
    """A prj_ ID must be one; anything else is a name (resolved later), up to 200 printable characters."""
    if value.startswith("prj_"):
        if not re.fullmatch(PROJECT_ID_PATTERN, value):
            raise PydanticCustomError("string_pattern_mismatch", "String should match pattern '{pattern}'",
                                      {"pattern": PROJECT_ID_PATTERN})
    elif not value or len(value) > 200 or not value.isprintable():
        raise PydanticCustomError("project_name", "a prj_… ID or a project's name (up to 200 printable characters)")
    return value


ProjectRefParam = Annotated[
    Annotated[str, AfterValidator(_project_ref), BeforeValidator(bare)] | None,
    Field(description="prj_… (list_projects) or its exact name; sets the workspace"),
]
RunIdParam = Annotated[str, Field(pattern=RUN_ID_PATTERN, description="From start_generation"), BeforeValidator(bare)]


def _lower(value: Any) -> Any:
    """An enum value in the wrong case or with spaces around it (' Image') is still unambiguous."""
    return value.strip().lower() if isinstance(value, str) else value


TypeParam = Annotated[GenerationType, BeforeValidator(_lower)]
# Longer prompts are refused before anything is paid for: media models read a few hundred words and
# FLORA would bill a 20,000-character prompt without a word about the rest.
PROMPT_MAX_CHARS = {"image": 4000, "video": 4000, "audio": 5000, "text": 100_000}


def _prompt_fits(prompt: str, info: ValidationInfo) -> str:
    limit = PROMPT_MAX_CHARS.get(str(info.data.get("type")), max(PROMPT_MAX_CHARS.values()))
    if len(prompt) > limit:
        raise PydanticCustomError("prompt_too_long", "{chars} characters; {type} prompts take at most {limit}",
                                  {"chars": len(prompt), "limit": limit, "type": info.data.get("type") or "these"})
    return prompt


PromptParam = Annotated[str, Field(min_length=1), AfterValidator(_prompt_fits)]
ModelIdParam = Annotated[
    Annotated[str, Field(pattern=r"^\S+$"), BeforeValidator(bare)] | None,
    Field(description="Endpoint ID from list_models"),
]
# Seconds to wait inside one call (default FLORA_WAIT_SECONDS, 25), up to MAX_WAIT_SECONDS.
WaitParam = Annotated[float | None, Field(ge=0, le=MAX_WAIT_SECONDS)]
IdempotencyKeyParam = Annotated[
    str | None,
    Field(pattern=r"^[!-~]{1,255}$", description="Same key: same run"),  # an HTTP header value
]
NewRunParam = Annotated[bool | None, Field(description="Don't reuse a recent identical run")]
# The agent's own spending limit for one call: refused before anything is sent when the estimate's
# upper bound (estimated_usd_max) is above it.
MaxUsdParam = Annotated[float | None, Field(gt=0, description="Refuse if it may cost more (USD)")]
# small: one preview to look at (several outputs share one contact sheet; audio is a link with its
# length); full: 1 MP images and inline audio; none: links only. Previews of a run come once per
# user; giving `previews` asks again.
PreviewsParam = Annotated[
    Literal["small", "full", "none"] | None,
    BeforeValidator(_lower),
    Field(description="Default small; sent once per run unless set"),
]


# --- named values: model params and technique inputs ----------------------------------------------
# Published as a list of {name, value} pairs, not as an object with free-form keys: strict
# function-calling (OpenAI) and Gemini accept no object whose keys are not declared. Values are
# published as text and read by the param's declared type ("4" for an int; JSON text for a list or
# object); plain JSON values and a plain object ({"aspect_ratio": "16:9"}) are accepted too, and an
# output object given as a value becomes its URL.
def parse_named_values(value: Any) -> Any:
    if isinstance(value, list):
        named: dict[str, Any] = {}
        for index, item in enumerate(value):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) or set(item) - {"name", "value"}:
                raise ValueError(f"item {index} must be {{name, value}}, got {item!r}")
            if item["name"] in named:
                raise ValueError(f"{item['name']!r} is given twice")
            named[item["name"]] = item.get("value")
        value = named
    if isinstance(value, dict):
        return {name: as_value(v) for name, v in value.items()}
    return value


def named_values(description: str) -> dict[str, Any]:
    """The published schema of a {name: value} mapping: [{name, value}]."""
    return {"type": "array", "description": description, "items": {
        "type": "object", "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
        "required": ["name", "value"]}}


PARAMS_SCHEMA = named_values("As list_models shows, e.g. [{name: aspect_ratio, value: '16:9'}]")
ParamsParam = Annotated[dict[str, Any] | None, BeforeValidator(parse_named_values), WithJsonSchema(PARAMS_SCHEMA)]
ACTION_PARAMS_SCHEMA = named_values("As list_actions shows, e.g. [{name: angle, value: '90'}]")
ActionParamsParam = Annotated[dict[str, Any] | None, BeforeValidator(parse_named_values),
                              WithJsonSchema(ACTION_PARAMS_SCHEMA)]


def typed(kind: str, value: Any) -> Any:
    """A value sent as text, read as the declared kind: int, float, bool, list or object; else unchanged."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if kind in ("int", "seed", "int?", "integer"):
            return int(text)
        if kind in ("float", "number"):
            return int(text) if text.lstrip("-").isdigit() else float(text)
        if kind in ("bool", "boolean") and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if kind in ("string[]", "dict") and text[:1] in "[{":
            return json.loads(text)
    except ValueError:
        pass
    return value


class InputItem(ToolArgs):
    """One input of run_action: {type, url} or {type: text, text}; checked by param_checks.check_action."""

    type: Literal["image", "video", "audio", "text"]
    url: str | None = None
    text: str | None = None

    _from_output = model_validator(mode="before")(as_input_item)  # a run's output object, as is
