"""FLORA's run webhooks: signed nudges that wake waiters, who read the truth back under their own key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Any

import anyio
import httpx2
import pytest

from flora_mcp.ledger import open_ledger
from flora_mcp.models import Run
from flora_mcp.polling import RunPolls
from flora_mcp.sandbox.webhooks import SANDBOX_WEBHOOK_SECRET
from flora_mcp.signatures import check_signature, sign
from flora_mcp.transports.webhooks import WebhookReceiver
from tests.helpers import DEMO_KEY, free_port, mcp_http, running_sandbox, wait_healthy

USER = "0123456789abcdef0123456789abcdef"


def _event(run_id: str = "run_abc", delivery: str = "whd_1", status: str = "completed") -> bytes:
    return json.dumps({"id": delivery, "type": f"run.{status}", "api_version": "2026-06-11", "created_at": 1,
                       "data": {"run_id": run_id, "run_type": "generation", "workspace_id": "ws_1",
                                "status": status}}).encode()


# --- the signature -------------------------------------------------------------------------------------
def test_signature_checks():
    body, now = _event(), 1_767_225_600
    good = sign("whsec_x", body, now)
    assert check_signature("whsec_x", good, body, now + 299) is None
    assert "replay" in check_signature("whsec_x", good, body, now + 301)
    assert check_signature("whsec_x", sign("whsec_other", body, now), body, now) == "signature does not match"
    assert check_signature("whsec_x", good, body + b" ", now) == "signature does not match"  # raw bytes, not JSON
    assert check_signature("whsec_x", None, body, now) == "no Flora-Signature"
    assert check_signature("whsec_x", "v1=abc", body, now) == "no timestamp in Flora-Signature"


# --- the receiver, driven directly -----------------------------------------------------------------------
class _Flora:
    """get_run as FLORA answers it: the truth, whatever a webhook claimed."""

    def __init__(self, status: str) -> None:
        self.status, self.reads = status, 0

    async def get_run(self, run_id: str) -> Run:
        self.reads += 1
        return Run(run_id=run_id, status=self.status, progress=50.0, created_at=time.time())


async def test_a_forged_unsigned_delivery_without_a_secret_costs_one_read_and_changes_nothing():
    """No secret configured: a delivery is accepted as a nudge, and the waiter reads FLORA, which says running."""
    polls = RunPolls(open_ledger("memory:").shared)
    receiver, flora = WebhookReceiver(polls, secret=None), _Flora("running")
    async with polls.watch(USER, ["run_abc"], {"run_abc": 600}) as [poll]:
        await poll.refresh(flora)
        status, _ = await receiver.receive(USER, {}, _event(status="completed"))
        await poll.refresh(flora)
    assert status == 200 and flora.reads == 2 and poll.answer.value.status == "running"


async def test_a_secret_refuses_unsigned_and_replayed_deliveries_and_dedupes_by_id():
    polls = RunPolls(open_ledger("memory:").shared)
    receiver = WebhookReceiver(polls, secret="whsec_x")
    body, now = _event(), time.time()
    assert (await receiver.receive(USER, {}, body))[0] == 401
    old = {"flora-signature": sign("whsec_x", body, int(now) - 400), "flora-webhook-id": "whd_1"}
    assert (await receiver.receive(USER, old, body))[0] == 401
    fresh = {"flora-signature": sign("whsec_x", body, int(now)), "flora-webhook-id": "whd_1"}
    assert await receiver.receive(USER, fresh, body) == (200, {"ok": True})
    assert await receiver.receive(USER, fresh, body) == (200, {"ok": True, "duplicate": True})
    assert (await receiver.receive("../etc", fresh, body))[0] == 404
    junk = {"flora-signature": sign("whsec_x", b"{}", int(now)), "flora-webhook-id": "whd_2"}
    assert (await receiver.receive(USER, junk, b"{}"))[0] == 400  # signed, but not a run event


# --- end to end: the sandbox delivers to a hosted server on loopback --------------------------------------
@contextmanager
def _hosted_with_webhooks(flora_url: str, state_dir: str):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLORA_")} | {
        "FLORA_BASE_URL": flora_url, "FLORA_STATE_URL": f"sqlite:///{state_dir}/ledger.sqlite3",
        "FLORA_RATE_LIMIT": "0", "FLORA_WEBHOOK_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "FLORA_WEBHOOK_SECRET": SANDBOX_WEBHOOK_SECRET, "FLORA_LOG_LEVEL": "WARNING"}
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([sys.executable, "-m", "flora_mcp", "--transport", "http", "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=log, env=env)
        try:
            wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(10)


def _sandbox(flora_url: str, **faults: Any) -> dict[str, Any]:
    control = flora_url.removesuffix("/api/v1") + "/_sandbox"
    return httpx2.post(control, json={"faults": faults} if faults else {}).json()


ROWS = [  # fault (sandbox control), the run's end, what each delivery attempt should be answered
    ("clean", {}, "completed", [200]),
    ("duplicate", {"webhook_duplicates": 1}, "completed", [200, "duplicate"]),
    ("bad signature, then FLORA's retry", {"webhook_bad_signatures": 1}, "completed", [401, 200]),
    ("replay signed 400 s ago", {"webhook_replays": 1}, "completed", [200, 401]),
    ("late by 2 s", {"webhook_delay": 2.0}, "completed", [200]),
    ("run failed", {"fail_runs": 1}, "failed", [200]),
]


@pytest.fixture(scope="module")
def webhook_setup():
    with (running_sandbox(speed=20) as flora, tempfile.TemporaryDirectory() as state,  # a 45 s video: ~2.3 s
          _hosted_with_webhooks(flora, state) as base):
        yield flora, base


@pytest.mark.parametrize(("row", "faults", "end", "answers"), ROWS, ids=[r[0] for r in ROWS])
@pytest.mark.slow
async def test_webhook_fault_table(webhook_setup, row, faults, end, answers):
    """Every row ends in the run's true state, with one status read (none before the webhook), and each
    delivery attempt answered as the row says."""
    flora, base = webhook_setup
    _sandbox(flora, **{"webhook_delay": 0.0} | faults)
    async with mcp_http(base, DEMO_KEY) as client:
        ws = (await client.call_tool("list_workspaces", {})).structured_content["workspaces"][0]["workspace_id"]
        prj = (await client.call_tool("list_projects", {"workspace_id": ws})).structured_content["projects"][0]
        started = (await client.call_tool("start_generation", {
            "type": "video", "prompt": f"a fox: {row}", "model": "t2v-seedance-1-lite", "workspace_id": ws,
            "project_id": prj["project_id"], "wait_seconds": 0})).structured_content
        run_id = started["run_id"]
        reads_before = _sandbox(flora)["status_reads"]
        began = time.monotonic()
        result = await client.call_tool("get_run", {"run_id": run_id, "wait_seconds": 20})
        waited = time.monotonic() - began
        await anyio.sleep(1.5)  # the retry / duplicate / replay attempts after the first
    control = _sandbox(flora, webhook_delay=0.0)
    attempts = [w for w in control["webhooks"] if w["run_id"] == run_id]
    seen = ["duplicate" if (w.get("answer") or {}).get("duplicate") else w["status"] for w in attempts]
    assert result.structured_content["status"] == end, (row, result.structured_content)
    assert control["status_reads"] - reads_before == 1, row  # the webhook's read; no polls before it
    assert seen == answers, (row, attempts)
    assert waited < 15, (row, waited)  # woken by the webhook, not by the 30 s safety-net poll
    print(f"\nFAULT ROW | {row} | ends {result.structured_content['status']} | status reads "
          f"{control['status_reads'] - reads_before} | deliveries answered {seen} | get_run waited {waited:.1f} s")


@pytest.mark.slow
async def test_out_of_order_deliveries_for_a_batch_each_wake_their_own_run(webhook_setup):
    """The first run's delivery is held back 2 s, so the second's arrives first: both end completed, with
    one status read each."""
    flora, base = webhook_setup
    async with mcp_http(base, DEMO_KEY) as client:
        ws = (await client.call_tool("list_workspaces", {})).structured_content["workspaces"][0]["workspace_id"]
        prj = (await client.call_tool("list_projects", {"workspace_id": ws})).structured_content["projects"][0]
        run_ids = []
        for delay, prompt in ((2.0, "held back"), (0.0, "on time")):
            _sandbox(flora, webhook_delay=delay)
            started = (await client.call_tool("start_generation", {
                "type": "video", "prompt": f"a fox, {prompt}", "model": "t2v-seedance-1-lite", "workspace_id": ws,
                "project_id": prj["project_id"], "wait_seconds": 0})).structured_content
            run_ids.append(started["run_id"])
        reads_before = _sandbox(flora)["status_reads"]
        result = await client.call_tool("get_run", {"run_id": run_ids, "wait_seconds": 20})
    control = _sandbox(flora, webhook_delay=0.0)
    order = [w["run_id"] for w in control["webhooks"] if w["run_id"] in run_ids]
    assert order == list(reversed(run_ids))  # out of order
    assert [r["status"] for r in result.structured_content["runs"]] == ["completed", "completed"]
    assert control["status_reads"] - reads_before == 2


async def test_a_flood_of_deliveries_for_one_run_costs_at_most_one_read_per_nudge_window():
    """No secret, 50 forged deliveries with fresh IDs for a run being waited on: nudges closer than 2 s
    count as one, so FLORA is read once more, not 50 times."""
    polls = RunPolls(open_ledger("memory:").shared)
    receiver, flora = WebhookReceiver(polls, secret=None), _Flora("running")
    async with polls.watch(USER, ["run_abc"], {"run_abc": 600}) as [poll]:
        await poll.refresh(flora)
        for i in range(50):
            assert (await receiver.receive(USER, {}, _event(delivery=f"whd_{i}")))[0] == 200
            if poll.seconds_until_due() == 0:
                await poll.refresh(flora)
    assert flora.reads == 2
