"""Per-user caches (model catalogue, described outputs) and the per-call bundle tools receive.

What must last or be shared (paid starts, spending, key checks) lives in the ledger, not here: this
process may be one of many, or gone after one call.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPDeprecationWarning

from .._recent import Recent
from ..config import Settings
from ..errors import FloraError
from ..sdk_internals import connection_of

if TYPE_CHECKING:
    from ..client import FloraClient
    from ..ledger import Ledger
    from ..models import Model

logger = logging.getLogger("flora_mcp.server")

CATALOG_TTL = 600.0  # seconds a fetched model catalogue is trusted
_LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]


@dataclass
class UserState:
    """This process's caches for one API key. Never shared between keys; safe to lose."""

    models: list[Model] | None = None
    models_fetched_at: float = 0.0
    seen: Recent = field(default_factory=lambda: Recent(10_000))  # run ID -> (status, charge) last told the ledger
    estimates: Recent = field(default_factory=lambda: Recent(10_000))  # run ID -> estimated seconds, for hints
    finished: Recent = field(default_factory=lambda: Recent(32))  # run ID -> {preview mode: rows, blocks}
    models_used: Recent = field(default_factory=lambda: Recent(10_000))  # run ID -> model endpoint ID
    run_projects: Recent = field(default_factory=lambda: Recent(10_000))  # run ID -> project ID (canvas_links.py)
    canvas_urls: Recent = field(default_factory=lambda: Recent(1_000))  # project ID -> canvas URL (canvas_links.py)
    lock: anyio.Lock = field(default_factory=anyio.Lock)

    async def catalog(self, client: FloraClient) -> list[Model]:
        """The model catalogue, from cache when fresh; a stale copy if FLORA cannot be reached."""
        async with self.lock:
            fresh = self.models is not None and time.monotonic() - self.models_fetched_at < CATALOG_TTL
            if fresh:
                return self.models  # type: ignore[return-value]
            try:
                self.models = (await client.list_models()).models
                self.models_fetched_at = time.monotonic()
            except FloraError:
                if self.models is None:
                    raise
                logger.warning("model catalogue refresh failed; using the cached copy")
            return self.models


@dataclass
class ToolCall:
    """Everything one tool call needs: the user's client, settings, caches, ledger, and the MCP context."""

    client: FloraClient
    settings: Settings
    user_state: UserState  # this process's caches for the user (who the user is: user_id)
    ledger: Ledger
    user_id: str  # the ledger's name for this user (a hash of FLORA's URL and the key)
    ctx: Context | None = None
    log_levels: Any = None  # connection -> level chosen with logging/setLevel
    hosted: bool = False  # serving many users over HTTP: never touch the server's own disk
    previews: str | None = None  # the call's `previews` argument, if it has one (outputs.py)

    def _client_wants(self, level: str) -> bool:
        if self.ctx is None or self.log_levels is None:
            return True
        try:
            chosen = self.log_levels.get(connection_of(self.ctx.request_context.session))
        except (TypeError, ValueError):
            return True
        return chosen is None or _LEVELS.index(level) >= _LEVELS.index(chosen)

    async def catalog(self) -> list[Model]:
        return await self.user_state.catalog(self.client)

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        if self.ctx is None:
            return
        try:
            await self.ctx.report_progress(progress, total, message)
        except Exception:  # progress is best effort; a gone client must not fail the call
            logger.debug("progress notification not delivered", exc_info=True)

    async def info(self, message: str) -> None:
        logger.info(message)
        if self.ctx is None or not self._client_wants("info"):
            return
        try:
            # MCP logging is deprecated from protocol 2026-07-28 but is how older clients see logs.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MCPDeprecationWarning)
                await self.ctx.info(message)
        except Exception:
            logger.debug("log notification not delivered", exc_info=True)
