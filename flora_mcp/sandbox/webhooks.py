"""The sandbox's run webhooks, delivered as FLORA delivers them (shared/flora-api/asyncapi).

A run started with `callback_url` gets one terminal event (`run.completed` / `run.failed`) POSTed
there when it settles: JSON without outputs, `Flora-Signature: t=…,v1=HMAC-SHA256("t.body")` with the
workspace secret (the sandbox has one, SANDBOX_WEBHOOK_SECRET), `Flora-Webhook-Id`, `Flora-Event`;
10 s timeout, no redirects, retried after 10 s, 1 min and 5 min (divided by the sandbox's speed) when
the answer is not 2xx. Faults (Faults.webhook_*) add duplicates, bad signatures, replays and delays.

One deviation: FLORA refuses loopback and private targets; the sandbox also accepts http:// on
loopback, so tests can receive its webhooks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx2

from ..signatures import sign

if TYPE_CHECKING:
    from .state import SandboxRun, SandboxState

logger = logging.getLogger("flora_mcp.sandbox")

SANDBOX_WEBHOOK_SECRET = "whsec_sandbox_demo"
RETRY_SECONDS = (10.0, 60.0, 300.0)
API_VERSION = "2026-06-11"
_pending: set[asyncio.Task] = set()  # deliveries under way (a reference keeps each task alive)


def callback_problem(url: Any) -> str | None:
    """Why FLORA (and the sandbox) would refuse this callback_url; None when it is fine."""
    if not isinstance(url, str):
        return "Expected string"
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme == "https" and parts.hostname and not loopback:
        return None
    if parts.scheme in ("http", "https") and loopback:
        return None  # the sandbox's one deviation: tests receive on loopback
    return "callback_url must be a public https URL"


def schedule(state: SandboxState, run: SandboxRun) -> None:
    """Deliver the run's webhook when it settles (a task on the running loop)."""
    task = asyncio.get_running_loop().create_task(_deliver(state, run))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


def _event(state: SandboxState, run: SandboxRun) -> tuple[str, bytes]:
    view = state.view_run(run)
    delivery = state.new_id("whd", run.run_id, str(time.time()))
    data: dict[str, Any] = {"run_id": run.run_id, "run_type": run.run_type if run.run_type != "action" else "generation",
                            "workspace_id": run.workspace_id, "status": view["status"]}
    if view["status"] == "failed":
        data |= {"error_code": view.get("error_code"), "error_message": view.get("error_message")}
    body = {"id": delivery, "type": f"run.{view['status']}", "api_version": API_VERSION,
            "created_at": int(time.time() * 1000), "data": data}
    return delivery, json.dumps(body, separators=(",", ":")).encode()  # byte-stable across retries


async def _deliver(state: SandboxState, run: SandboxRun) -> None:
    from .state import PENDING_SECONDS

    settles = run.created_at + (PENDING_SECONDS + max(run.estimated_seconds, 1)) / state.speed
    faults = state.faults
    await asyncio.sleep(max(0.0, settles - state.clock()) + 0.01 + faults.webhook_delay)
    delivery, body = _event(state, run)
    bad = _take(faults, "webhook_bad_signatures")
    twice = _take(faults, "webhook_duplicates")
    replay = _take(faults, "webhook_replays")
    async with httpx2.AsyncClient(timeout=10.0, follow_redirects=False) as http:
        for attempt, wait in enumerate((0.0, *RETRY_SECONDS)):
            if wait:
                await asyncio.sleep(wait / state.speed)
            ok = await _post(state, http, run.callback_url, delivery, body, signed_at=int(time.time()),
                             secret=("whsec_wrong" if bad and attempt == 0 else SANDBOX_WEBHOOK_SECRET))
            if ok:
                break
        if twice:
            await _post(state, http, run.callback_url, delivery, body, signed_at=int(time.time()))
        if replay:
            await _post(state, http, run.callback_url, delivery, body, signed_at=int(time.time()) - 400)


def _take(faults: Any, name: str) -> bool:
    if getattr(faults, name):
        setattr(faults, name, getattr(faults, name) - 1)
        return True
    return False


async def _post(state: SandboxState, http: httpx2.AsyncClient, url: str | None, delivery: str, body: bytes, *,
                signed_at: int, secret: str = SANDBOX_WEBHOOK_SECRET) -> bool:
    event = json.loads(body)["type"]
    headers = {"Content-Type": "application/json", "Flora-Signature": sign(secret, body, signed_at),
               "Flora-Webhook-Id": delivery, "Flora-Event": event}
    entry: dict[str, Any] = {"id": delivery, "event": event, "run_id": json.loads(body)["data"]["run_id"],
                             "signed_seconds_ago": int(time.time()) - signed_at, "good_secret": secret ==
                             SANDBOX_WEBHOOK_SECRET}
    state.webhook_log.append(entry)  # what tests read back: each attempt and how it was answered
    try:
        answer = await http.post(str(url), content=body, headers=headers)
    except httpx2.HTTPError as exc:
        logger.info("webhook %s to %s failed: %s", delivery, url, type(exc).__name__)
        entry["status"] = None
        return False
    entry["status"] = answer.status_code
    try:
        entry["answer"] = answer.json()
    except ValueError:
        entry["answer"] = None
    return 200 <= answer.status_code < 300
