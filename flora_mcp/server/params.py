"""Shared tool parameters: one definition per kind of value, so every tool describes it the same way.

Descriptions say where a value comes from; patterns and enums come from the FLORA contract.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from .._ids import PROJECT_ID_PATTERN, RUN_ID_PATTERN, WORKSPACE_ID_PATTERN, GenerationType


class ToolArgs(BaseModel):
    """Base of every tool's request model: unknown arguments are refused (with the allowed list).

    defer_build: validators are built on a tool's first call; at start-up the published schemas
    come from schemas.json (checked against these models by tests/test_schema_snapshot.py).
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)


WorkspaceParam = Annotated[
    str | None,
    Field(pattern=WORKSPACE_ID_PATTERN, description="From list_workspaces"),
]
ProjectParam = Annotated[
    str | None,
    Field(pattern=PROJECT_ID_PATTERN, description="From list_projects"),
]
RequiredWorkspaceParam = Annotated[str, Field(pattern=WORKSPACE_ID_PATTERN, description="From list_workspaces")]
RunIdParam = Annotated[str, Field(pattern=RUN_ID_PATTERN, description="From start_generation")]
TypeParam = GenerationType
ModelParam = Annotated[
    str | None,
    Field(pattern=r"^\S+$", description="Endpoint ID from list_models"),
]
# Seconds to wait inside one call (default FLORA_WAIT_SECONDS, 25): capped well under the ~60 s
# after which common clients give up on a call.
WaitParam = Annotated[float | None, Field(ge=0, le=50)]
IdempotencyKeyParam = Annotated[
    str | None,
    Field(pattern=r"^[!-~]{1,255}$", description="Same key: same run"),  # an HTTP header value
]
NewRunParam = Annotated[bool | None, Field(description="Don't reuse a recent identical run")]
