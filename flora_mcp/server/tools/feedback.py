"""Telling FLORA what an agent could not do (POST /feedback): a capability that is missing, a bug."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from ..._ids import RUN_ID_PATTERN
from ..arguments import ProjectParam, ToolArgs, WorkspaceParam, bare
from ..toolcall import ToolCall
from ..tooling import ToolResult, ToolSpec


class SendFeedback(ToolArgs):
    summary: Annotated[str, Field(min_length=1, max_length=200, description="One line, e.g. 'Upscale an image'")]
    detail: Annotated[str, Field(min_length=1, max_length=4000, description="What the user wanted and what was tried")]
    kind: Annotated[Literal["missing_capability", "feature_request", "bug", "technique_request"] | None,
                    Field(description="Default missing_capability")] = None
    attempted_tools: Annotated[list[str] | None, Field(description="Tools tried first, e.g. ['run_action']")] = None
    workspace_id: WorkspaceParam = None
    project_id: ProjectParam = None
    run_id: Annotated[str | None, Field(pattern=RUN_ID_PATTERN, description="A run it concerns"),
                      BeforeValidator(bare)] = None


async def send_feedback(req: SendFeedback, call: ToolCall) -> ToolResult:
    from ...models import FeedbackRequest

    recorded = await call.client.record_feedback(FeedbackRequest(
        kind=req.kind or "missing_capability", summary=req.summary, detail=req.detail,
        attempted_tools=req.attempted_tools or None, workspace_id=req.workspace_id, project_id=req.project_id,
        run_id=req.run_id))
    return ToolResult({"feedback_id": recorded.feedback_id, "kind": req.kind or "missing_capability",
                       "note": "FLORA received it; nothing was charged. Tell the user it cannot be done here yet"})


TOOLS = [
    ToolSpec("send_feedback", "Tell FLORA something could not be done (a missing capability) or went wrong. Free.",
             SendFeedback, send_feedback, "core", read_only=False, idempotent=False),
]
