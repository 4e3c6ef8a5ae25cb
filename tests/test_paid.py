"""Never pay for a mistake, never lose a run: paid starts under faults, retries, cut calls and budgets,
driven through the MCP client as an agent would."""

from __future__ import annotations

import json

import anyio
import httpx2
import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError

from flora_mcp.retry import RetryPolicy
from flora_mcp.sandbox import Sandbox
from flora_mcp.server import create_server
from tests.helpers import call, id_args, settings, text_of


def image(ids: dict, prompt: str = "a red fox", model: str = "t2i-flux-2-schnell", **extra) -> dict:
    return {"type": "image", "prompt": prompt, "model": model, **ids, **extra}


# --- after FLORA accepted: the run ID always reaches the agent ------------------------------------------------
async def test_failing_status_check_after_a_start_still_answers_with_the_run(make_session, fast_sandbox):
    async with make_session(max_retries=0) as client:
        ids = await id_args(client)
        fast_sandbox.faults.server_errors = 50
        fast_sandbox.faults.only_paths = ("/runs/*",)
        result, data = await call(client, "start_generation", image(ids, wait_seconds=0.5))
        assert not result.is_error, text_of(result)
        assert data["run_id"] in fast_sandbox.charged_runs() and data["status"] == "unknown"
        assert data["idempotency_key"] and f"get_run with run_id={data['run_id']}" in data["next"]
        fast_sandbox.faults.server_errors = 0
        again, repeat = await call(client, "start_generation", image(ids, wait_seconds=5))  # the agent retries
        assert repeat["run_id"] == data["run_id"] and repeat["reused"] is True and repeat["status"] == "completed"
    assert len(fast_sandbox.state.charges) == 1


@pytest.mark.parametrize("mode", ["conflict", "replay"])
async def test_dropped_start_is_unknown_then_the_same_key_never_charges_twice(make_session, mode):
    sandbox = Sandbox(speed=200, idempotency_mode=mode)
    async with make_session(sandbox, max_retries=0) as client:
        ids = await id_args(client)
        sandbox.faults.drop_after_processing = 1
        sandbox.faults.only_paths = ("/generate",)
        result, data = await call(client, "start_generation", image(ids, wait_seconds=2))
        assert not result.is_error and data["status"] == "unknown" and data["run_id"] is None
        key = data["idempotency_key"]
        assert f"idempotency_key={key!r}" in data["next"] and "never starts a second run" in data["next"]
        assert "omit" not in data["next"]
        result, data = await call(client, "start_generation", image(ids, idempotency_key=key, wait_seconds=5))
        assert not result.is_error, text_of(result)
        if mode == "replay":  # FLORA's docs: the first answer is replayed, run ID included
            assert data["run_id"] == sandbox.charged_runs()[0] and data["status"] == "completed"
        else:  # FLORA's spec: 409, no run ID
            assert data["status"] == "accepted" and "charged it once" in data["next"]
        _, runs = await call(client, "list_runs")
        assert len(runs["runs"]) == 1
    assert len(sandbox.state.charges) == 1


async def test_client_retries_inside_one_call_reach_the_run_in_replay_mode(make_session):
    sandbox = Sandbox(speed=200, idempotency_mode="replay")
    async with make_session(sandbox) as client:
        ids = await id_args(client)
        sandbox.faults.drop_after_processing = 2
        sandbox.faults.only_paths = ("/generate",)
        result, data = await call(client, "start_generation", image(ids, wait_seconds=5))
    assert not result.is_error and data["status"] == "completed" and data["run_id"] in sandbox.charged_runs()
    assert len(sandbox.state.charges) == 1


async def test_an_identical_call_while_the_first_is_unknown_resends_its_key(make_session, fast_sandbox):
    async with make_session(fast_sandbox, max_retries=0) as client:
        ids = await id_args(client)
        fast_sandbox.faults.drop_after_processing = 1
        fast_sandbox.faults.only_paths = ("/generate",)
        _, first = await call(client, "start_generation", image(ids))
        _, second = await call(client, "start_generation", image(ids))  # the agent just calls again
    assert first["status"] == "unknown" and second["status"] == "accepted"
    assert second["idempotency_key"] == first["idempotency_key"] and second["reused"] is True
    assert len(fast_sandbox.state.charges) == 1


# --- clients that cut calls -----------------------------------------------------------------------------------
@pytest.mark.slow
async def test_a_call_cut_by_the_client_and_retried_pays_once(make_session, fast_sandbox):
    """openai-agents cuts tool calls at 5 s; the retry must find the first run, not start a second."""
    sandbox = Sandbox(speed=20)  # a 45 s video takes ~2 s
    async with make_session(sandbox) as client:
        ids = await id_args(client)
        args = {"type": "video", "prompt": "waves", "model": "t2v-seedance-1-lite", **ids, "wait_seconds": 30}
        with pytest.raises(MCPError):
            await client.call_tool("start_generation", args, read_timeout_seconds=0.5)
        await anyio.sleep(0.2)
        result, data = await call(client, "start_generation", args)
    assert not result.is_error and data["reused"] is True and data["status"] == "completed"
    assert len(sandbox.state.charges) == 1 and data["run_id"] == sandbox.charged_runs()[0]


@pytest.mark.slow
async def test_a_call_cut_mid_post_still_records_the_run(make_session):
    sandbox = Sandbox(speed=200)
    async with make_session(sandbox) as client:
        ids = await id_args(client)
        await call(client, "start_generation", image(ids, dry_run=True))  # catalogue cached: the POST is next
        sandbox.faults.slow_seconds = 1.0  # every request, the POST included, takes 1 s
        with pytest.raises(MCPError):
            await client.call_tool("start_generation", image(ids), read_timeout_seconds=0.3)
        await anyio.sleep(1.5)  # the shielded POST finishes and is recorded
        sandbox.faults.slow_seconds = 0
        _, runs = await call(client, "list_runs")
        result, data = await call(client, "start_generation", image(ids))
    assert runs["runs"][0][0] == sandbox.charged_runs()[0]
    assert data["reused"] is True and len(sandbox.state.charges) == 1


async def test_concurrent_identical_calls_start_once(make_session, fast_sandbox):
    async with make_session() as client:
        ids = await id_args(client)
        answers = []

        async def go() -> None:
            answers.append((await call(client, "start_generation", image(ids)))[1])

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(go)
    assert len(fast_sandbox.state.charges) == 1
    assert {a["run_id"] for a in answers} == {fast_sandbox.charged_runs()[0]}
    assert sum(1 for a in answers if a.get("reused")) == 4


async def test_new_run_starts_another_and_says_so(make_session, fast_sandbox):
    async with make_session() as client:
        ids = await id_args(client)
        _, first = await call(client, "start_generation", image(ids))
        _, again = await call(client, "start_generation", image(ids))
        _, fresh = await call(client, "start_generation", image(ids, new_run=True))
    assert again["reused"] is True and "new_run=true" in again["reused_note"]
    assert fresh["run_id"] != first["run_id"] and "reused" not in fresh
    assert len(fast_sandbox.state.charges) == 2


async def test_same_key_for_another_request_is_refused_before_spending(make_session, fast_sandbox):
    async with make_session() as client:
        ids = await id_args(client)
        await call(client, "start_generation", image(ids, idempotency_key="mine-1"))
        result, data = await call(client, "start_generation", image(ids, prompt="a cat", idempotency_key="mine-1"))
    assert result.is_error and "different start_generation request" in text_of(result)
    assert "Nothing was started or charged" in text_of(result) and len(fast_sandbox.state.charges) == 1


# --- budgets that hold ------------------------------------------------------------------------------------------
async def test_twenty_concurrent_starts_stay_inside_the_budget(make_session, fast_sandbox):
    async with make_session(budget_usd=0.2) as client:
        ids = await id_args(client)
        results = []

        async def go(n: int) -> None:
            results.append(await call(client, "start_generation", image(ids, prompt=f"fox {n}", wait_seconds=0)))

        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(go, n)
    refused = [text_of(r) for r, _ in results if r.is_error]
    assert refused and all("budget" in t and "Nothing was started" in t for t in refused)
    assert sum(usd for _, _, usd in fast_sandbox.state.charges) <= 0.2


async def test_budget_refuses_unknown_costs_and_checks_each_batch_item(make_session, fast_sandbox):
    async with make_session(budget_usd=1.0, max_cost_per_run=0.10) as client:
        ids = await id_args(client)
        items = [{"type": "image", "prompt": f"p{n}"} for n in range(20)]  # no model: FLORA picks, cost unknown
        result, _ = await call(client, "start_generations", {"items": items, **ids, "wait_seconds": 0})
        assert result.is_error and "no cost estimate" in text_of(result)
        items = [{"type": "image", "prompt": f"p{n}", "model": "t2i-flux-2-schnell"} for n in range(6)]
        result, data = await call(client, "start_generations", {"items": items, **ids, "wait_seconds": 0})
        assert not result.is_error and data["started"] == 6  # 6 x $0.02: each under the per-run limit
        big = image(ids, model="t2i-flux-2-pro", params={"num_images": 4, "resolution": "4K"})
        result, _ = await call(client, "start_generation", big)
        assert result.is_error and "x4 num_images" in text_of(result) and "FLORA_MAX_COST_PER_RUN" in text_of(result)
    assert len(fast_sandbox.state.charges) == 6


async def test_old_session_budget_name_still_holds(make_session, fast_sandbox):
    async with make_session(session_budget=0.1) as client:
        ids = await id_args(client)
        ok, _ = await call(client, "start_generation", image(ids, model="t2i-flux-2-pro"))
        refused, _ = await call(client, "start_generation", image(ids, prompt="other", model="t2i-flux-2-pro"))
    assert not ok.is_error and refused.is_error and "$0.1 budget" in text_of(refused)


async def test_two_servers_on_one_ledger_share_keys_and_budget(tmp_path, fast_sandbox):
    state = f"sqlite:///{tmp_path}/ledger.sqlite3"
    a = Client(create_server(settings(state_url=state, budget_usd=0.1), client=fast_sandbox.client()))
    b = Client(create_server(settings(state_url=state, budget_usd=0.1), client=fast_sandbox.client()))
    async with a, b:
        ids = await id_args(a)
        _, first = await call(a, "start_generation", image(ids, model="t2i-flux-2-pro", idempotency_key="shared"))
        _, second = await call(b, "start_generation", image(ids, model="t2i-flux-2-pro", idempotency_key="shared"))
        refused, _ = await call(b, "start_generation", image(ids, prompt="other", model="t2i-flux-2-pro"))
    assert first["run_id"] == second["run_id"] and len(fast_sandbox.state.charges) == 1
    assert refused.is_error and "budget" in text_of(refused)


# --- estimates and what was spent ----------------------------------------------------------------------------------
async def test_estimates_learn_from_charges_and_name_their_units(make_session):
    async with make_session() as client:
        ids = await id_args(client)
        _, dry = await call(client, "start_generation", image(ids, model="t2i-flux-2-pro", dry_run=True))
        _, run = await call(client, "start_generation", image(ids, model="t2i-flux-2-pro"))
        _, learned = await call(client, "start_generation", image(ids, model="t2i-flux-2-pro", dry_run=True,
                                                                   params={"num_images": 2}))
    assert dry["estimated_usd"] == 0.06 and run["charged_usd"] == 0.075
    assert learned["estimated_usd"] == pytest.approx(0.15)  # 2 images x the learned 1.25 ratio
    assert "settled run" in learned["estimate_basis"]


async def test_list_runs_answers_what_was_spent_in_one_small_call(make_session, fast_sandbox):
    async with make_session(budget_usd=5.0) as client:
        ids = await id_args(client)
        items = [{"type": "image", "prompt": f"p{n}", "model": "t2i-flux-2-schnell"} for n in range(20)]
        await call(client, "start_generations", {"items": items, **ids, "wait_seconds": 0})
        await anyio.sleep(0.3)
        result, data = await call(client, "list_runs")
        _, done = await call(client, "list_runs", {"status": "completed", "limit": 5})
    size = len(json.dumps(data, separators=(",", ":")))
    assert size < 2048 + 20 * 6, size  # each row also names its prompt's opening words (here 6 bytes)
    assert {row[0] for row in data["runs"]} == set(fast_sandbox.charged_runs())
    assert data["totals"]["charged_usd"] == pytest.approx(sum(u for _, _, u in fast_sandbox.state.charges))
    assert data["totals"]["left_usd"] == pytest.approx(5.0 - data["totals"]["charged_usd"])
    assert len(done["runs"]) == 5 and done["more"] == 15
    assert not any(c.type == "image" for c in result.content)  # no previews


# --- regressions from the hostile review (each failed before its fix) ------------------------------------------
class _Mangled201(httpx2.AsyncBaseTransport):
    """A transport that turns FLORA's 201 for a start into an answer this server cannot read."""

    def __init__(self, inner, how: str) -> None:
        self.inner, self.how = inner, how

    async def handle_async_request(self, request):
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path.endswith("/generate") and response.status_code == 201:
            await response.aread()
            body = json.loads(response.content)
            if self.how == "missing":
                body.pop("charged_cost")
                return httpx2.Response(201, json=body)
            return httpx2.Response(201, content=b'{"run_id": "run_', headers={"content-type": "application/json"})
        return response


@pytest.mark.parametrize("how", ["missing", "truncated"])
async def test_an_unreadable_201_is_a_start_that_happened_not_a_refusal(how):
    from flora_mcp.client import FloraClient

    sandbox = Sandbox(speed=200)
    transport = _Mangled201(sandbox.transport(), how)
    flora = FloraClient("sk_sandbox_demo", base_url=sandbox.base_url, transport=transport)
    async with Client(create_server(settings(budget_usd=0.2), client=flora)) as client:
        ids = await id_args(client)
        result, data = await call(client, "start_generation", image(ids, model="t2i-flux-2-pro"))
        assert not result.is_error and data["status"] == "unknown" and data["idempotency_key"]
        assert "Nothing was started" not in text_of(result)
        again, data = await call(client, "start_generation", image(ids, model="t2i-flux-2-pro"))  # the agent retries
        _, runs = await call(client, "list_runs")
    assert data["status"] == "accepted" and len(sandbox.state.charges) == 1
    assert runs["totals"]["held_usd"] > 0  # the budget still holds money for it


async def test_a_409_for_a_key_the_agent_chose_is_accepted_even_in_a_fresh_ledger(make_session):
    sandbox = Sandbox(speed=200)
    async with make_session(sandbox, max_retries=0) as first:
        ids = await id_args(first)
        sandbox.faults.drop_after_processing = 1
        sandbox.faults.only_paths = ("/generate",)
        _, lost = await call(first, "start_generation", image(ids))
    async with make_session(sandbox, max_retries=0) as restarted:  # memory: ledger, so it forgot the start
        result, data = await call(restarted, "start_generation", image(ids, idempotency_key=lost["idempotency_key"]))
    assert data["status"] == "accepted" and "Nothing was started" not in text_of(result)
    assert len(sandbox.state.charges) == 1


async def test_an_unknown_start_is_not_resent_once_flora_may_have_forgotten_its_key(tmp_path):
    import sqlite3

    from flora_mcp.sandbox import ManualClock

    clock, path = ManualClock(), tmp_path / "ledger.sqlite3"
    sandbox = Sandbox(clock=clock)
    configured = settings(state_url=f"sqlite:///{path}", max_retries=0, wait_seconds=0)
    async with Client(create_server(configured, client=sandbox.client(retry=RetryPolicy(max_retries=0)))) as client:
        ids = await id_args(client)
        sandbox.faults.drop_after_processing = 1
        sandbox.faults.only_paths = ("/generate",)
        _, lost = await call(client, "start_generation", image(ids))
    clock.advance(3 * 3600)  # three hours later FLORA's spec no longer promises the key is remembered
    db = sqlite3.connect(path)
    db.execute("UPDATE paid_starts SET created = created - ?, updated = updated - ?", (3 * 3600, 3 * 3600))
    db.commit()
    db.close()
    async with Client(create_server(configured, client=sandbox.client(retry=RetryPolicy(max_retries=0)))) as client:
        _, data = await call(client, "start_generation", image(ids, idempotency_key=lost["idempotency_key"]))
    assert data["status"] == "unknown" and "new_run=true" in data["next"] and "check the project" in data["next"]
    assert len(sandbox.state.charges) == 1  # not resent: FLORA would have started a second run


async def test_replay_mode_resend_with_params_in_another_order_finds_the_run(make_session):
    sandbox = Sandbox(speed=200, idempotency_mode="replay")
    async with make_session(sandbox, max_retries=0) as client:
        ids = await id_args(client)
        sandbox.faults.drop_after_processing = 1
        sandbox.faults.only_paths = ("/generate",)
        _, lost = await call(client, "start_generation", image(ids, params={"aspect_ratio": "1:1", "seed": 7}))
        _, found = await call(client, "start_generation", image(ids, params={"seed": 7, "aspect_ratio": "1:1"},
                                                                idempotency_key=lost["idempotency_key"],
                                                                wait_seconds=5))
    assert found["run_id"] == sandbox.charged_runs()[0] and found["status"] == "completed"
    assert len(sandbox.state.charges) == 1


async def test_a_call_waiting_on_an_identical_start_that_flora_refused_is_told_nothing_was_charged(make_session):
    sandbox = Sandbox(speed=200, credits=0)
    async with make_session(sandbox) as client:
        ids = await id_args(client)
        sandbox.faults.slow_seconds = 0.3
        answers = []

        async def go() -> None:
            answers.append(await call(client, "start_generation", image(ids)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(go)
            await anyio.sleep(0.05)
            tg.start_soon(go)
    assert all(r.is_error and "Nothing was started or charged" in text_of(r) for r, _ in answers)
    assert not any(d.get("status") == "unknown" for _, d in answers)


# --- a paid tool reads top to bottom ---------------------------------------------------------------------------
@pytest.mark.parametrize(("tool", "args"), [
    ("start_generation", {"type": "image", "prompt": "a red fox", "model": "t2i-flux-2-schnell"}),
    ("run_action", {"action_id": "split-text", "inputs": [{"type": "text", "text": "a, b"}],
                    "params": {"delimiter": ","}}),
], ids=["start_generation", "run_action"])
async def test_a_paid_start_reaches_its_post_in_three_of_our_frames(make_session, monkeypatch, tool, args):
    """The dispatcher, the handler, the client's method: then the POST (client._request on down)."""
    import inspect
    from pathlib import Path

    import flora_mcp
    from flora_mcp.sandbox import _InProcessTransport

    ours = Path(flora_mcp.__file__).parent
    stacks: list[list[str]] = []
    handle = _InProcessTransport.handle_async_request

    async def recording(self, request):
        if request.method == "POST":
            frames = [f for f in inspect.stack() if Path(f.filename).is_relative_to(ours)
                      and not Path(f.filename).is_relative_to(ours / "sandbox")]
            # The MCP Tasks interceptor (server/tasks.py) passes every call through: not one of the three.
            stacks.append([f.function for f in reversed(frames) if f.function != "intercept_tool_call"])
        return await handle(self, request)

    monkeypatch.setattr(_InProcessTransport, "handle_async_request", recording)
    async with make_session() as client:
        result, _ = await call(client, tool, args | await id_args(client))
    assert not result.is_error, text_of(result)
    [stack] = stacks
    client_method = {"start_generation": "start_generation", "run_action": "start_action_run"}[tool]
    assert stack[:3] == ["run", tool, client_method], stack
    assert stack[3] == "_request", stack  # FloraClient's one request path: the POST itself
