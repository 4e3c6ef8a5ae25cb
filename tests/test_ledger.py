"""The ledger on both stores (SQLite file, real Redis): decisions, atomic budgets, settling, shared values."""

from __future__ import annotations

import uuid

import anyio
import pytest

from flora_mcp.ledger import Intent, OverBudget, open_ledger, request_fingerprint


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.slow)])
def ledger_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.sqlite3"
    return request.getfixturevalue("redis_url")


@pytest.fixture
async def ledgers(ledger_url):
    """Two ledgers on one store: two processes, workers or replicas."""
    a, b = open_ledger(ledger_url), open_ledger(ledger_url)
    yield a, b
    await a.aclose()
    await b.aclose()


def intent(key: str | None = None, body: dict | None = None, usd: float = 0.05, **kw) -> Intent:
    body = body or {"prompt": "a fox"}
    return Intent(key=key or uuid.uuid4().hex, key_given=key is not None, tool="start_generation",
                  fingerprint=request_fingerprint("start_generation", body), reserve_usd=usd, estimated_usd=usd, **kw)


def user() -> str:
    return uuid.uuid4().hex


async def test_same_key_and_identical_requests_return_the_earlier_run(ledgers):
    a, b = ledgers
    who = user()
    [first] = await a.begin(who, [intent("k1")], budget_usd=None, window_seconds=3600)
    assert first.kind == "start"
    await a.started(who, "k1", "run_1")
    [again] = await b.begin(who, [intent("k1")], budget_usd=None, window_seconds=3600)
    assert again.kind == "follow" and again.row["run_id"] == "run_1" and not again.reused
    [same_request] = await b.begin(who, [intent()], budget_usd=None, window_seconds=3600)
    assert same_request.kind == "follow" and same_request.reused and same_request.row["run_id"] == "run_1"
    [forced] = await b.begin(who, [intent(new_run=True)], budget_usd=None, window_seconds=3600)
    assert forced.kind == "start"
    [other_key] = await b.begin(who, [intent("k2")], budget_usd=None, window_seconds=3600)
    assert other_key.kind == "start"  # a different key the agent chose: a new run
    [conflict] = await b.begin(who, [intent("k1", body={"prompt": "a cat"})], budget_usd=None, window_seconds=3600)
    assert conflict.kind == "conflict"


async def test_unknown_outcome_is_resent_with_the_same_key_and_accepted_is_final(ledgers):
    a, b = ledgers
    who = user()
    await a.begin(who, [intent("k")], budget_usd=None, window_seconds=3600)
    await a.outcome_unknown(who, "k", "connection dropped")
    [retry] = await b.begin(who, [intent()], budget_usd=None, window_seconds=3600)  # same request, no key
    assert retry.kind == "resend" and retry.key == "k" and retry.reused
    await b.accepted_without_id(who, "k")
    [final] = await a.begin(who, [intent("k")], budget_usd=None, window_seconds=3600)
    assert final.kind == "accepted"


async def test_concurrent_identical_request_waits_for_the_first_start(ledgers):
    a, b = ledgers
    who = user()
    await a.begin(who, [intent("k")], budget_usd=None, window_seconds=3600)
    [second] = await b.begin(who, [intent()], budget_usd=None, window_seconds=3600)
    assert second.kind == "wait"

    async def finish_first() -> None:
        await anyio.sleep(0.3)
        await a.started(who, "k", "run_9")

    async with anyio.create_task_group() as tg:
        tg.start_soon(finish_first)
        row = await b.wait_for_start(who, "k")
    assert row["run_id"] == "run_9"


async def test_twenty_concurrent_reservations_on_two_ledgers_never_pass_the_budget(ledgers):
    a, b = ledgers
    who = user()
    accepted, refused = [], []

    async def try_start(ledger, n: int) -> None:
        try:
            await ledger.begin(who, [intent(body={"prompt": f"p{n}"}, usd=0.075)], budget_usd=0.5, window_seconds=3600)
            accepted.append(n)
        except OverBudget:
            refused.append(n)

    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(try_start, a if n % 2 else b, n)
    assert len(accepted) == 6 and len(refused) == 14  # 6 x 0.075 = 0.45 <= 0.5 < 7 x 0.075
    spent, held = await a.totals(who, 3600)
    assert spent == 0 and held == pytest.approx(0.45)


async def test_a_batch_reserves_its_sum_or_nothing(ledgers):
    a, _ = ledgers
    who = user()
    batch = [intent(body={"prompt": f"p{n}"}, usd=0.02) for n in range(6)]
    await a.begin(who, batch, budget_usd=0.12, window_seconds=3600)  # 6 x 0.02 fits exactly
    with pytest.raises(OverBudget) as caught:
        await a.begin(who, [intent(body={"prompt": "one more"}, usd=0.01)], budget_usd=0.12, window_seconds=3600)
    assert caught.value.reserved_usd == pytest.approx(0.12) and caught.value.asked_usd == pytest.approx(0.01)
    assert len(await a.rows(who)) == 6


async def test_no_estimate_is_refused_once_the_budget_is_reached(ledgers):
    a, _ = ledgers
    who = user()
    await a.begin(who, [intent(body={"prompt": "x"}, usd=0.0)], budget_usd=0.1, window_seconds=3600)  # confirmed, $0 held
    await a.begin(who, [intent(body={"prompt": "y"}, usd=0.1)], budget_usd=0.1, window_seconds=3600)
    with pytest.raises(OverBudget):
        await a.begin(who, [intent(body={"prompt": "z"}, usd=0.0)], budget_usd=0.1, window_seconds=3600)


async def test_settling_replaces_the_reservation_with_the_charge_and_learns_the_ratio(ledgers):
    a, b = ledgers
    who = user()
    model = f"m-{uuid.uuid4().hex[:6]}"
    await a.begin(who, [intent("k", usd=0.09, details={"model": model})], budget_usd=None, window_seconds=3600)
    await a.started(who, "k", "run_5")
    assert await a.observe(who, "run_5", "running", 0.0) is None
    settled = await b.observe(who, "run_5", "completed", 0.075)
    assert settled["charged_usd"] == 0.075 and settled["reserved_usd"] == 0
    assert await a.observe(who, "run_5", "completed", 0.075) is None  # once
    assert await a.totals(who, 3600) == (0.075, 0.0)
    ratio, runs = await b.calibration(model)
    assert runs == 1 and ratio == pytest.approx(0.075 / 0.09)


async def test_released_start_frees_its_reservation(ledgers):
    a, _ = ledgers
    who = user()
    await a.begin(who, [intent("k", usd=0.1)], budget_usd=0.1, window_seconds=3600)
    await a.release(who, "k")
    assert await a.rows(who) == []
    await a.begin(who, [intent("k2", usd=0.1)], budget_usd=0.1, window_seconds=3600)


async def test_shared_values_expire_and_are_taken_once(ledgers):
    a, b = ledgers
    name = f"t:{uuid.uuid4().hex}"
    await a.store.put(name, "v", ttl=30)
    assert await b.store.get(name) == "v"
    assert [await a.store.take(name), await b.store.take(name)] == ["v", None]
    await a.store.put(name, "short", ttl=0.05)
    await anyio.sleep(0.1)
    assert await b.store.get(name) is None
    counts = [await (a if n % 2 else b).store.count(name, 60) for n in range(5)]
    assert counts == [1, 2, 3, 4, 5]


async def test_users_are_named_by_a_hash_never_the_key(tmp_path):
    from flora_mcp._ids import user_id

    ledger = open_ledger(f"sqlite:///{tmp_path}/l.sqlite3")
    who = user_id("https://app.flora.ai/api/v1", "sk_live_secret_value")
    await ledger.begin(who, [intent("k")], budget_usd=None, window_seconds=3600)
    await ledger.aclose()
    assert b"sk_live_secret_value" not in (tmp_path / "l.sqlite3").read_bytes()
    assert who != user_id("http://127.0.0.1:1/api/v1", "sk_live_secret_value")


def test_pruning_keeps_unfinished_rows_and_the_budget_window():
    from flora_mcp.ledger import book

    now = 1_000_000.0
    rows = {f"s{n}": {"key": f"s{n}", "status": "completed", "created": now - 7200 - n, "charged_usd": 0.01}
            for n in range(book.MAX_ROWS + 50)}
    rows["lost"] = {"key": "lost", "status": "unknown", "created": now - 10 * 86400, "reserved_usd": 0.5}
    rows["recent"] = {"key": "recent", "status": "completed", "created": now - 60, "charged_usd": 0.01}
    book.prune(rows, now, keep_seconds=86400)
    assert "lost" in rows and "recent" in rows  # money held, and inside the window: kept
    assert len(rows) == book.MAX_ROWS + 52  # the settled rows from 2 h ago are inside the 24 h window too
    book.prune(rows, now, keep_seconds=3600)
    assert "lost" in rows and "recent" in rows and len(rows) == book.MAX_ROWS
