"""Where to see a result: the canvas URL of the project a run belongs to.

    note_run_project(call, started)           # when a run starts (its answer names the project)
    row |= await where_to_see(call, run_id)   # when describing a finished run: {"canvas_url": …} or {}

A project's canvas URL comes from FLORA's canvas endpoints (GET /projects/{id} has none); it is
fetched once per project and kept with the user's other caches (UserState: run -> project and
project -> URL).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..errors import FloraError
from ..ledger import LedgerUnavailable

if TYPE_CHECKING:
    from ..models import RunStarted
    from .toolcall import ToolCall

logger = logging.getLogger("flora_mcp.server")

def note_run_project(call: ToolCall, started: RunStarted) -> None:
    if started.project_id:
        call.user_state.run_projects[started.run_id] = started.project_id


def note_canvas_url(call: ToolCall, project_id: str, url: str) -> None:
    """Every canvas answer carries the URL: keep it, so later runs need no extra request."""
    call.user_state.canvas_urls[project_id] = url


async def canvas_url(call: ToolCall, project_id: str) -> str | None:
    """The project's canvas URL, or None if FLORA cannot say (never an error: it is a courtesy)."""
    urls = call.user_state.canvas_urls
    if project_id not in urls:
        try:
            page = await call.client.list_canvas_nodes(project_id, limit=1)  # the smallest answer with the URL
        except FloraError as exc:
            logger.debug("no canvas URL for %s: %s", project_id, exc.code)
            return None
        urls[project_id] = page.canvas_url
    return urls[project_id]


async def where_to_see(call: ToolCall, run_id: str) -> dict[str, Any]:
    project_id = call.user_state.run_projects.get(run_id)
    if project_id is None:  # started by another process: the ledger knows its project
        try:
            project_id = (await call.ledger.run(call.user_id, run_id) or {}).get("project_id")
        except LedgerUnavailable:  # a link is a nicety: the run's answer goes out without it
            project_id = None
    url = await canvas_url(call, project_id) if project_id else None
    return {"canvas_url": url, "project_id": project_id} if url else {}
