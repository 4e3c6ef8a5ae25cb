"""Turning a ToolSpec (tooling.py) into an MCP tool: its published input schema, and the dispatcher that
opens the call, validates the arguments, runs the handler and turns every failure into an answer.

The input schema is the request model's JSON schema (compacted: agents pay for every byte of
tools/list). Arguments are validated by the same model inside the call, so a wrong value becomes
an answer that says what to use instead (see guidance.py), never a stack trace.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import CallToolResult, InputRequiredResult, TextContent
from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import FloraError
from .guidance import explain
from .outputs import finish_previews
from .tooling import NOTHING_STARTED, NeedsInput, ToolInputError, ToolSpec

logger = logging.getLogger("flora_mcp.server")


class _RawArguments(ArgModelBase):
    """Hands the raw arguments to our dispatcher, which validates them with the request model."""

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        return {"arguments": dict(self.model_extra or {})}


PUBLISHED_SCHEMAS = Path(__file__).with_name("schemas.json")


@functools.cache
def published_schemas() -> dict[str, dict[str, Any]]:
    """The input schemas as generated from the request models, saved at development time.

    Reading them is faster at start-up than generating them (which would also build every
    model's validator); tests/test_schema_snapshot.py fails if they ever differ from the models.
    """
    try:
        return json.loads(PUBLISHED_SCHEMAS.read_text())
    except FileNotFoundError:
        return {}


def input_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = _compact(model.model_json_schema())
    # Unknown arguments are still refused (by the model, with the list of allowed ones); the
    # published flag would only cost bytes in every tools/list.
    schema.pop("additionalProperties", None)
    return schema


def _compact(node: Any) -> Any:
    """Drop what tells an agent nothing: titles and null defaults.

    An optional field stays nullable in the schema: strict function-calling (OpenAI) makes every
    property required, so null is how a model there says "not given". It is written
    `anyOf: [X, {"type": "null"}]`, not `"type": [X, "null"]`: fast-agent's Gemini converter rejects
    the list form, and the anyOf form converts in every framework tried (issue 23).
    """
    if isinstance(node, list):
        return [_compact(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if (key == "default" and value is None) or (key == "additionalProperties" and value is True):
            continue
        out[key] = value if key in ("enum", "const", "pattern", "examples") else _compact(value)
    return out


def build_tool(spec: ToolSpec, open_call: Callable[[Context], Awaitable[Any]]) -> Tool:
    """An SDK Tool whose schema is `spec.request`'s and whose body is our dispatcher.

    `open_call` builds the per-call session (client, defaults, caches) from the MCP context. A
    validation failure becomes guidance (guidance.explain), looking values up when it can.
    """

    async def run(arguments: dict[str, Any], ctx: Context) -> CallToolResult | InputRequiredResult:
        call = None
        try:
            call = await open_call(ctx)
            try:
                request = spec.request.model_validate(arguments)
            except ValidationError as exc:
                raise ToolInputError(await explain(exc, arguments, call, spec.request)) from None
            except (TypeError, ValueError, AttributeError) as exc:  # a validator tripped on a value's shape
                raise ToolInputError(f"arguments: a value has the wrong type or shape ({type(exc).__name__}); send "
                                     f"them as the tool's schema says: {', '.join(spec.request.model_fields)}") from None
            call.previews = getattr(request, "previews", None)
            result = await spec.handler(request, call)
            finish_previews(result)
        except NeedsInput as needs:
            return needs.result
        except ToolInputError as exc:
            return _error_result("invalid_argument", _refusal(spec, str(exc)))
        except FloraError as exc:
            return _error_result(exc.code, str(exc))
        except ValidationError as exc:  # a value the handler passed on (e.g. into an API request) was refused
            return _error_result("invalid_argument", _fields(exc))
        except Exception as exc:  # a bug: still an answer the agent can read, never the SDK's bare crash text
            logger.exception("tool %s failed", spec.name)
            return _error_result("internal_error", f"{spec.name} failed unexpectedly ({type(exc).__name__}); "
                                 "check the arguments and try again, or report this if it repeats")
        text = result.text if result.text is not None else json.dumps(result.structured, separators=(",", ":"))
        return CallToolResult(
            content=[TextContent(type="text", text=text), *result.content],
            structured_content=result.structured,
        )

    return Tool(
        fn=run,
        name=spec.name,
        title=None,  # the snake_case name reads well enough; a title costs bytes in every tools/list
        description=spec.description,
        parameters=published_schemas().get(spec.name) or input_schema(spec.request),
        fn_metadata=FuncMetadata(arg_model=_RawArguments),
        is_async=True,
        context_kwarg="ctx",
        annotations=spec.annotations(),
    )


def _fields(exc: ValidationError) -> str:
    """'field: problem' for each error, without the values (they may be long or secret)."""
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                     for e in exc.errors(include_input=False, include_url=False)[:5])


def _refusal(spec: ToolSpec, message: str) -> str:
    """A refused paid call says so: an argument problem is found before anything starts. The one place that
    ends a paid tool's refusal with NOTHING_STARTED (tools do not add it); a message that says it before its
    advice (spending.py, paid.py) keeps it there."""
    if spec.read_only:
        return message
    stripped = message.rstrip(". ")
    if stripped.endswith(NOTHING_STARTED):
        return f"{stripped}."
    if "Nothing was " in message:  # it already says what was not done ("Nothing was sent")
        return message
    return f"{stripped}. {NOTHING_STARTED}."


_LONG_VALUE = re.compile(r"\S{121,}")


def _shortened(message: str) -> str:
    """An error quotes what it was sent; a 900 KB value is cut to its start and its length."""
    return _LONG_VALUE.sub(lambda m: f"{m.group(0)[:60]}…({len(m.group(0)):,} characters)", message)


def _error_result(code: str, message: str) -> CallToolResult:
    message = _shortened(message)
    logger.info("tool error %s: %s", code, message)
    return CallToolResult(
        content=[TextContent(type="text", text=message)],
        structured_content={"error": {"code": code, "message": message}},
        is_error=True,
    )
