"""Where to see a result: the canvas URL of the project a run belongs to.

    note_run_project(call, started)           # when a run starts (its answer names the project)
    row |= await where_to_see(call, run_id)   # when describing a finished run: {"canvas_url": …} or {}

A project's canvas URL comes from FLORA's canvas endpoints (GET /projects/{id} has none); it is
fetched once per project and kept with the user's other caches (UserState: run -> project and
project -> URL).
"""

from __future__ import annotations

import json
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


# FLORA's canvas reads (the Mermaid, GET /projects/{id}/nodes) do not return what a node was set to
# generate with; what patch_canvas sent is kept in the shared store so read_canvas can show it.
NOTED_FIELDS = ("model", "prompt", "aspect_ratio", "resolution")
NOTED_NODES = 500  # per project: the most recently patched
NOTED_SECONDS = 30 * 24 * 3600
_PROMPT_WORDS = 160  # characters of a prompt kept


def _noted_name(call: ToolCall, project_id: str) -> str:
    return f"canvas-params:{call.user_id}:{project_id}"


async def noted_node_params(call: ToolCall, project_id: str) -> dict[str, dict[str, Any]]:
    """node ID -> what patch_canvas set on it through this server ({} if nothing, or the store is down)."""
    try:
        raw = await call.ledger.shared.get(_noted_name(call, project_id))
    except LedgerUnavailable:
        return {}
    try:
        noted = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return noted if isinstance(noted, dict) else {}


async def note_node_params(call: ToolCall, project_id: str, node_params: dict[str, dict[str, Any]]) -> None:
    """After a patch FLORA applied: keep the model, prompt, aspect ratio and resolution of its nodes."""
    fresh = {node: {k: (str(v)[:_PROMPT_WORDS] if k == "prompt" else v) for k, v in values.items()
                    if k in NOTED_FIELDS and v is not None}
             for node, values in node_params.items()}
    fresh = {node: values for node, values in fresh.items() if values}
    if not fresh:
        return
    noted = await noted_node_params(call, project_id)
    for node, values in fresh.items():
        earlier = noted.pop(node, {})  # re-inserted last: the newest patches are kept
        noted[node] = {**(earlier if isinstance(earlier, dict) else {}), **values}
    noted = dict(list(noted.items())[-NOTED_NODES:])
    try:
        await call.ledger.shared.put(_noted_name(call, project_id), json.dumps(noted, separators=(",", ":")),
                                     NOTED_SECONDS)
    except LedgerUnavailable as exc:  # a nicety: the patch itself was applied
        logger.warning("could not keep the node params of %s's patch (%s)", project_id, exc)
