"""An outside review of the merge of issues 21-27: each test is a defect a user, an agent or an attacker
would meet (found by attacking the merged main), kept as a regression test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from mcp.client import Client

from flora_mcp.ledger import open_ledger
from flora_mcp.sandbox import SANDBOX_API_KEY, Sandbox
from flora_mcp.server import create_server
from tests.helpers import first_ids, settings, text_of


def _hosted(sandbox: Sandbox, ledger: Any, **overrides: Any) -> Client:
    """An in-memory session on a hosted-mode server (one user's key) over a shared ledger."""
    client = sandbox.client(SANDBOX_API_KEY)
    return Client(create_server(settings(**overrides), client=client, api_key_for=lambda ctx: SANDBOX_API_KEY,
                                ledger=ledger))


async def _image_args(client: Client) -> dict[str, Any]:
    ws, prj = await first_ids(client)
    return {"type": "image", "prompt": "a review fox", "model": "t2i-flux-2-schnell", "workspace_id": ws,
            "project_id": prj, "wait_seconds": 0}


async def test_a_retry_across_turning_webhooks_on_reuses_the_run_instead_of_paying_again():
    """callback_url is the server's plumbing, not the agent's request: a replica with
    FLORA_WEBHOOK_PUBLIC_URL set and one without (a rolling deploy) must see one identical request."""
    sandbox, ledger = Sandbox(speed=5), open_ledger("memory:")
    async with _hosted(sandbox, ledger) as before:
        args = await _image_args(before)
        first = await before.call_tool("start_generation", args)
    async with _hosted(sandbox, ledger, webhook_public_url="https://mcp.example.com") as after:
        again = await after.call_tool("start_generation", args)
    assert not first.is_error and not again.is_error, text_of(again)
    assert again.structured_content["run_id"] == first.structured_content["run_id"], text_of(again)
    assert len(sandbox.state.charges) == 1


async def test_an_agent_key_retried_across_turning_webhooks_on_is_not_a_conflict():
    sandbox, ledger = Sandbox(speed=5), open_ledger("memory:")
    async with _hosted(sandbox, ledger) as before:
        args = await _image_args(before) | {"idempotency_key": "review-key-0001"}
        first = await before.call_tool("start_generation", args)
    async with _hosted(sandbox, ledger, webhook_public_url="https://mcp.example.com") as after:
        again = await after.call_tool("start_generation", args)
    assert not again.is_error, text_of(again)
    assert again.structured_content["run_id"] == first.structured_content["run_id"]


@pytest.mark.parametrize("run_id", [None, 42, {"id": "run_x"}])
async def test_a_wrong_run_id_names_the_field_without_pydantic_internals(make_session, run_id):
    async with make_session() as client:
        result = await client.call_tool("get_run", {"run_id": run_id})
    text = text_of(result)
    assert result.is_error and text.startswith("run_id"), text
    assert "function-before" not in text and "constrained-" not in text and "[" not in text.split(":")[0], text


# --- MCP Tasks when the ledger's shared store fails ---------------------------------------------------
@contextmanager
def _store_down(ledger: Any) -> Iterator[None]:
    """The shared values (get/put/...) of a memory ledger fail as an unreachable store does, while its run
    book still decides (a store that blips between the start's decision and the task's record)."""
    from flora_mcp.ledger.errors import LedgerUnavailable

    async def down(*args: Any, **kwargs: Any) -> None:
        raise LedgerUnavailable("the ledger's store is unreachable", hint="check FLORA_STATE_URL")

    store = ledger.shared
    saved = {name: getattr(store, name) for name in ("get", "put", "count", "take", "delete")}
    for name in saved:
        setattr(store, name, down)
    try:
        yield
    finally:
        for name, method in saved.items():
            setattr(store, name, method)


async def test_a_task_start_whose_record_cannot_be_kept_still_answers_with_its_run(caplog):
    from tests.test_tasks import _video_args, send, served

    sandbox, ledger = Sandbox(speed=30), open_ledger("memory:")
    async with served(sandbox, ledger) as client:
        args = await _video_args(client)
        with _store_down(ledger):
            answer = await send(client, "tools/call", {"name": "start_generation", "arguments": args})
    [run_id] = list(sandbox.state.runs)
    assert answer.get("resultType") != "task" and not answer.get("isError"), answer
    assert answer["structuredContent"]["run_id"] == run_id and answer["structuredContent"]["idempotency_key"]
    assert "Traceback" not in caplog.text and "request handler raised" not in caplog.text


async def test_tasks_get_with_the_store_down_says_so_and_how_to_carry_on(caplog):
    from mcp.shared.exceptions import MCPError

    from tests.test_tasks import _video_args, send, served

    sandbox, ledger = Sandbox(speed=30), open_ledger("memory:")
    async with served(sandbox, ledger) as client:
        created = await send(client, "tools/call", {"name": "start_generation", "arguments": await _video_args(client)})
        with _store_down(ledger), pytest.raises(MCPError) as refused:
            await send(client, "tasks/get", {"taskId": created["taskId"]})
    assert "unreachable" in refused.value.error.message and "get_run" in refused.value.error.message
    assert "request handler raised" not in caplog.text


# --- the webhook receiver, open to anyone when no secret is set (multi-tenant hosting) ------------------
async def test_a_forged_delivery_id_cannot_write_a_large_name_into_the_shared_store():
    """Without FLORA_WEBHOOK_SECRET each delivery's ID is kept a day to act on it once; an unsigned
    request with a 60 KB ID must not become a 60 KB row that outlives it by a day."""
    import json

    from flora_mcp.polling import RunPolls
    from flora_mcp.transports.webhooks import WebhookReceiver

    store = open_ledger("memory:").shared
    names: list[str] = []
    count = store.count

    async def recording(name: str, window: float) -> int:
        names.append(name)
        return await count(name, window)

    store.count = recording
    receiver = WebhookReceiver(RunPolls(store), secret=None)
    body = json.dumps({"id": "evt_1", "type": "run.completed", "data": {"run_id": "run_abc"}}).encode()
    status, _ = await receiver.receive("u" * 32, {"flora-webhook-id": "x" * 60_000}, body)
    assert status == 200
    assert max(len(n) for n in names) <= 200, [len(n) for n in names]


# --- params an agent gets wrong ----------------------------------------------------------------------
@pytest.mark.parametrize("guidance", ["nan", "NaN", float("inf"), "-inf"])
async def test_a_number_param_that_is_not_a_number_is_refused_before_anything_starts(make_session, fast_sandbox,
                                                                                      guidance):
    """'nan' read as a float passed the range check: the dry run said params_ok with "guidance":NaN (not
    JSON) and the real call POSTed it to FLORA and started a paid run."""
    async with make_session() as client:
        ws, prj = await first_ids(client)
        args = {"type": "image", "prompt": "a fox", "model": "t2i-flux-2-pro", "workspace_id": ws, "project_id": prj,
                "params": {"guidance": guidance}, "wait_seconds": 0}
        dry = await client.call_tool("start_generation", args | {"dry_run": True})
        real = await client.call_tool("start_generation", args)
    for result in (dry, real):
        text = text_of(result)
        assert result.is_error and "NaN" not in text and "params.guidance" in text, text
    assert real.is_error and fast_sandbox.state.runs == {} and fast_sandbox.state.charges == []


async def test_run_canvas_action_holds_the_agents_max_usd_like_every_other_paid_tool(make_session, fast_sandbox):
    """issue 23: 'a max_usd on paid tools'. run_canvas_action is paid but refused max_usd as an unknown
    argument, so an agent holding a limit across its starts could not pass it there."""
    from tests.test_canvas import _action_on_canvas

    async with make_session() as client:
        workspace_id, project_id = await first_ids(client)
        _, action = await _action_on_canvas(client, workspace_id, project_id)
        charged_before = len(fast_sandbox.charged_runs())
        args = {"project_id": project_id, "node_id": action}
        refused = await client.call_tool("run_canvas_action", args | {"max_usd": 0.001})
        assert refused.is_error and "max_usd $0.001" in text_of(refused), text_of(refused)
        assert len(fast_sandbox.charged_runs()) == charged_before
        allowed = await client.call_tool("run_canvas_action", args | {"max_usd": 1})
        assert not allowed.is_error, text_of(allowed)


# --- checked and held: kept as guards of the money path across the merge ------------------------------
async def test_a_task_start_retried_by_the_client_follows_the_same_run_and_pays_once():
    from tests.test_tasks import _video_args, send, served

    sandbox, ledger = Sandbox(speed=30), open_ledger("memory:")
    async with served(sandbox, ledger) as client:
        args = await _video_args(client)
        first = await send(client, "tools/call", {"name": "start_generation", "arguments": args})
        retry = await send(client, "tools/call", {"name": "start_generation", "arguments": args})
    async with served(sandbox, ledger, opt_in=False) as plain:  # and a plain call of the same request
        direct = await plain.call_tool("start_generation", args | {"wait_seconds": 0})
    assert first["taskId"] != retry["taskId"]
    assert len(sandbox.state.runs) == 1 and direct.structured_content["run_id"] in sandbox.state.runs


# --- settings an operator gets wrong ---------------------------------------------------------------------
def test_a_webhook_url_flora_refuses_does_not_break_every_generation(monkeypatch):
    """FLORA refuses a callback_url that is not public https (CONTRACT; the sandbox likewise). An operator's
    FLORA_WEBHOOK_PUBLIC_URL without https:// made every start_generation fail at FLORA with an error about
    an argument the agent never passed; it is now refused when the settings load, naming the variable."""
    from flora_mcp.config import SettingsError, load_settings

    for value in ("mcp.example.com", "http://mcp.example.com", "ftp://mcp.example.com", "https://"):
        monkeypatch.setenv("FLORA_WEBHOOK_PUBLIC_URL", value)
        with pytest.raises(SettingsError) as caught:
            load_settings()
        assert "FLORA_WEBHOOK_PUBLIC_URL" in str(caught.value) and "https://" in str(caught.value), str(caught.value)
    for value in ("https://mcp.example.com", "https://mcp.example.com/base/", "http://127.0.0.1:8080"):
        monkeypatch.setenv("FLORA_WEBHOOK_PUBLIC_URL", value)
        assert load_settings().webhook_public_url == value


# --- a charge FLORA settles after the run (CONTRACT: "charged_cost settles after the run") ---------------
async def test_a_charge_that_settles_after_completion_counts_against_the_budget_and_calibrates():
    """FLORA may say completed with charged_cost 0 and the real charge a moment later. The ledger took
    the first completed answer as final: the run counted $0 against the budget for ever (its reservation
    released) and the model's calibration learned a ratio of 0 (estimates of $0.00, 'calibrated')."""
    from flora_mcp.ledger import Intent, request_fingerprint

    ledger = open_ledger("memory:")
    intent = Intent(key="k-late-1", key_given=False, tool="start_generation",
                    fingerprint=request_fingerprint("start_generation", {"prompt": "late"}), reserve_usd=0.09,
                    estimated_usd=0.06, details={"model": "t2i-flux-2-pro", "calibration": 1.0})
    await ledger.begin("u1", [intent], budget_usd=1.0, window_seconds=3600)
    await ledger.started("u1", "k-late-1", "run_late1")
    await ledger.observe("u1", "run_late1", "completed", 0.0)  # finished; the charge not settled yet
    await ledger.observe("u1", "run_late1", "completed", 0.075)  # the settled charge
    spent, reserved = await ledger.totals("u1", 3600)
    learned = await ledger.calibration("u1", "t2i-flux-2-pro")
    assert (spent, reserved) == (0.075, 0.0)
    assert learned.runs == 1 and learned.ratio == pytest.approx(1.25)
