"""Shared tool parameters: one definition per kind of value, so every tool describes it the same way.

Descriptions say where a value comes from; patterns and enums come from the FLORA contract.
"""

from __future__ import annotations

from typing import Annotated, Literal

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
# small: one preview to look at (several outputs share one contact sheet; audio is a link with its
# length); full: 1 MP images and inline audio; none: links only. Previews of a run come once per
# user; giving `previews` asks again.
PreviewsParam = Annotated[
    Literal["small", "full", "none"] | None,
    Field(description="small (default; one sheet for many) | full (1 MP, inline audio) | none. Once per run unless set"),
]
