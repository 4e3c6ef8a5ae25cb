"""How long a tool call may wait for a run, by who is calling.

Clients cut a tool call after their own timeout; a wait longer than that turns a run that is merely
unfinished into an error the agent sees first (the ledger makes the retry free, but it costs a call
and confuses the agent). MCP's `initialize` names the client (clientInfo), so the default wait fits
it. The table and the measurements behind it: docs/clients-timeouts.md (benchmarks/client_waits.py).
"""

from __future__ import annotations

from typing import Any

# clientInfo.name (lowercased; a prefix matches) -> seconds the client waits for one tool call
# (None: no limit in effect). "mcp" is the Python SDK's default name, which several agent frameworks send:
# openai-agents cuts at 5 s, llama-index-tools-mcp at 30 s, strands and langchain-mcp-adapters never; the
# shortest decides. google-adk names itself and cuts stdio calls at 5 s (300 s over HTTP).
CLIENT_TIMEOUTS: dict[str, float | None] = {
    "mcp": 5.0,
    "google-adk": 5.0,
    "openai-mcp": 5.0,
    "claude-ai": 60.0,
    "claude-code": 60.0,
    "claude": 60.0,
    "fastmcp": None,
    "mcp-inspector": None,
}
MARGIN = 1.0  # seconds between the end of our wait and the client's cut: the answer must get there first
SHORTEST_WAIT = 1.0


def client_name(ctx: Any) -> str | None:
    """The calling client's clientInfo.name, where the connection has one."""
    try:
        params = ctx.request_context.session.client_params
        return params.client_info.name if params is not None else None
    except (AttributeError, LookupError, ValueError):
        return None


def client_timeout(name: str | None) -> float | None:
    """The known call timeout of a client by its clientInfo.name; None when unknown or unlimited."""
    if not name:
        return None
    lowered = name.strip().lower()
    if lowered in CLIENT_TIMEOUTS:
        return CLIENT_TIMEOUTS[lowered]
    prefix = next((known for known in CLIENT_TIMEOUTS if known != "mcp" and lowered.startswith(known)), None)
    return CLIENT_TIMEOUTS[prefix] if prefix else None


def default_wait(settings: Any, ctx: Any) -> float:
    """The wait when a call gives none: FLORA_WAIT_SECONDS if the operator set it, else the configured
    default shortened to end before the client's known cut."""
    if "wait_seconds" in settings.model_fields_set:
        return settings.wait_seconds
    cut = client_timeout(client_name(ctx))
    if cut is None:
        return settings.wait_seconds
    return min(settings.wait_seconds, max(cut - MARGIN, SHORTEST_WAIT))
