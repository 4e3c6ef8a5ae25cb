"""The server's vocabulary, on its ground floor: every tool module speaks in these names.

ToolSpec (one tool), ToolResult (what a handler returns), ToolInputError (a bad argument, answered as
guidance), NeedsInput (ask the user first) and NOTHING_STARTED (how a refused paid call says so).
dispatch.py turns a ToolSpec into an MCP tool; this module imports nothing of the server's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mcp_types import ContentBlock, InputRequiredResult, ToolAnnotations
from pydantic import BaseModel


class ToolInputError(Exception):
    """A value the agent sent cannot be used; the message says what to send instead."""


class NeedsInput(Exception):
    """The call needs the user's answer first (protocol 2026-07-28 `input_required`)."""

    def __init__(self, result: InputRequiredResult) -> None:
        super().__init__("input required")
        self.result = result


@dataclass
class ToolResult:
    structured: dict[str, Any]
    text: str | None = None  # defaults to the structured content as compact JSON
    content: list[ContentBlock] = field(default_factory=list)  # previews, resource links


Handler = Callable[[Any, Any], Awaitable[ToolResult]]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    request: type[BaseModel]
    handler: Handler
    toolset: str
    read_only: bool
    idempotent: bool
    destructive: bool = False

    def annotations(self) -> ToolAnnotations:
        """Only hints that differ from the spec's defaults (not read-only, destructive, not idempotent,
        open world): the same truth in fewer tools/list bytes. Every tool here reaches FLORA (open world)."""
        if self.read_only:
            return ToolAnnotations(read_only_hint=True)
        return ToolAnnotations(destructive_hint=self.destructive, idempotent_hint=self.idempotent or None)


NOTHING_STARTED = "Nothing was started or charged"
