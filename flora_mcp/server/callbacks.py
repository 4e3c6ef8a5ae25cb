"""The callback_url a paid start passes to FLORA when the hosted server has a public URL.

FLORA then POSTs run.completed / run.failed there (transports/webhooks.py): a nudge that wakes the
run's waiters. The user is named by the ledger's user ID (a hash, never the key).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ..polling import run_polls
from .toolcall import ToolCall

if TYPE_CHECKING:
    from ..models import RunStarted

CALLBACK_PATH = "/webhooks/flora/{user}"
# The starts that pass callback_url: POST /generate (asyncapi: also POST /techniques/{id}/runs, but our
# technique starts use POST /runs/technique, whose schema has no callback_url).
CALLBACK_TYPES = ("generation",)
logger = logging.getLogger("flora_mcp.server")


def callback_url(call: ToolCall) -> str | None:
    public = call.settings.webhook_public_url
    if not public or not call.hosted:  # only the hosted app has the receiver
        return None
    return public.rstrip("/") + CALLBACK_PATH.format(user=call.user_id)


async def expect_webhook(call: ToolCall, started: RunStarted) -> None:
    """After a start that passed a callback_url: its waiters take the start's answer as the run's first
    status and read FLORA when the webhook nudges them (flora_mcp.polling)."""
    if callback_url(call) is None or started.type not in CALLBACK_TYPES:
        return
    from ..models import Run

    run = Run(run_id=started.run_id, status="pending", progress=0.0, created_at=time.time())
    try:
        await run_polls(call.ledger).expect_webhook(call.user_id, started.run_id, run, started.estimated_seconds)
    except Exception as exc:  # noqa: BLE001 - the run is started either way; its waiters then simply poll
        logger.warning("could not note %s's webhook (%s)", started.run_id, type(exc).__name__)
