"""FLORA's run webhooks on the hosted app: each delivery is a nudge to read the run now.

FLORA POSTs `run.completed` / `run.failed` to the `callback_url` a start passed (see callback_url), at
least once (retried after 10 s, 1 min, 5 min), signed with the workspace's `whsec_` secret:
`Flora-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`. The payload carries no
outputs, and we trust nothing in it: a delivery only wakes the run's waiters on every process
(RunPolls.publish_nudge), and they read the truth with GET /runs/{id} under the user's own key. So a
forged, replayed or duplicated delivery can cost at most one status read.

- With FLORA_WEBHOOK_SECRET set, a delivery without a valid signature, or signed more than 300 s
  away from now, is refused (401) and changes nothing.
- Each delivery ID (`Flora-Webhook-Id`) is acted on once across processes (an atomic counter in the
  shared store); repeats are answered 200 at once.
- The answer is 200 as soon as the nudge is stored: heavy work never runs in FLORA's 10 s timeout.

The user is named in the callback URL by the ledger's user ID (a hash of FLORA's URL and the key,
never the key), so the nudge reaches that user's waiters only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..polling import RunPolls, run_polls
from ..server.callbacks import CALLBACK_PATH
from ..signatures import check_signature

logger = logging.getLogger("flora_mcp.webhooks")

PATH = CALLBACK_PATH
DEDUPE_SECONDS = 24 * 3600  # longer than FLORA's whole retry schedule (10 s + 1 min + 5 min)
MAX_BODY = 64 * 1024
_USER = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
_RUN = re.compile(r"^run_[A-Za-z0-9_-]{1,128}$")


class WebhookReceiver:
    """The receiver's decisions, apart from HTTP so the fault table can drive it directly."""

    def __init__(self, polls: RunPolls, secret: str | None) -> None:
        self.polls, self.secret = polls, secret

    async def receive(self, user: str, headers: Any, body: bytes, now: float | None = None) -> tuple[int, dict]:
        now = time.time() if now is None else now
        if not _USER.match(user):
            return 404, {"error": "unknown callback"}
        if self.secret:
            problem = check_signature(self.secret, headers.get("flora-signature"), body, now)
            if problem:
                logger.warning("webhook refused: %s", problem)
                return 401, {"error": "invalid signature"}
        try:
            event = json.loads(body)
            delivery = str(headers.get("flora-webhook-id") or event["id"])
            run_id = str(event["data"]["run_id"])
        except (ValueError, KeyError, TypeError):
            return 400, {"error": "not a FLORA run event"}
        if not _RUN.match(run_id):
            return 400, {"error": "not a FLORA run event"}
        # Named by a digest: an unsigned delivery's ID is anyone's text, kept a day
        seen = hashlib.sha256(delivery.encode("utf-8", "replace")).hexdigest()[:32]
        if await self.polls.store.count(f"webhook:{seen}", DEDUPE_SECONDS) > 1:
            return 200, {"ok": True, "duplicate": True}
        await self.polls.publish_nudge(user, run_id)
        return 200, {"ok": True}


def webhook_routes(settings: Any, ledger: Any) -> list[Route]:
    """The receiver, mounted when the server has a public URL for FLORA to call (FLORA_WEBHOOK_PUBLIC_URL)."""
    if not settings.webhook_public_url:
        return []
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    return [webhook_route(run_polls(ledger), secret)]


def webhook_route(polls: RunPolls, secret: str | None) -> Route:
    receiver = WebhookReceiver(polls, secret)

    async def endpoint(request: Request) -> JSONResponse:
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"error": "too large"}, status_code=413)
        status, answer = await receiver.receive(request.path_params["user"], request.headers, body)
        return JSONResponse(answer, status_code=status)

    return Route(PATH, endpoint, methods=["POST"])
