"""The ledger on every store (a SQLite file, a real PostgreSQL server): the same table of cases for each —
decisions, atomic budgets, settling, calibration per account, shared values."""

from __future__ import annotations

import time
import uuid

import anyio
import pytest

from flora_mcp.ledger import Intent, OverBudget, Query, open_ledger, request_fingerprint


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def ledger_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.sqlite3"
    return request.getfixturevalue("postgres_url")


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
    assert caught.value.held_usd == pytest.approx(0.12) and caught.value.asked_usd == pytest.approx(0.01)
    assert len((await a.page(who, Query(), 3600)).rows) == 6


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
    learned = await b.calibration(who, model)
    assert learned.runs == 1 and learned.scope == "model" and learned.ratio == pytest.approx(0.075 / 0.09)
    other_model = await b.calibration(who, "m-never-run")  # the account's ratio until that model has runs
    assert other_model.scope == "account" and other_model.ratio == pytest.approx(0.075 / 0.09)
    assert (await b.calibration(user(), model)).scope == "none"  # another account learns nothing from this one


async def test_released_start_frees_its_reservation(ledgers):
    a, _ = ledgers
    who = user()
    await a.begin(who, [intent("k", usd=0.1)], budget_usd=0.1, window_seconds=3600)
    await a.release(who, "k")
    assert (await a.page(who, Query(), 3600)).rows == []
    await a.begin(who, [intent("k2", usd=0.1)], budget_usd=0.1, window_seconds=3600)


async def test_shared_values_expire_and_are_taken_once(ledgers):
    a, b = ledgers
    name = f"t:{uuid.uuid4().hex}"
    await a.shared.put(name, "v", ttl=30)
    assert await b.shared.get(name) == "v"
    assert [await a.shared.take(name), await b.shared.take(name)] == ["v", None]
    await a.shared.put(name, "short", ttl=0.05)
    await anyio.sleep(0.1)
    assert await b.shared.get(name) is None
    counts = [await (a if n % 2 else b).shared.count(name, 60) for n in range(5)]
    assert counts == [1, 2, 3, 4, 5]


async def test_users_are_named_by_a_hash_never_the_key(tmp_path):
    from flora_mcp._ids import user_id

    ledger = open_ledger(f"sqlite:///{tmp_path}/l.sqlite3")
    who = user_id("https://app.flora.ai/api/v1", "sk_live_secret_value")
    await ledger.begin(who, [intent("k")], budget_usd=None, window_seconds=3600)
    await ledger.aclose()
    assert b"sk_live_secret_value" not in (tmp_path / "l.sqlite3").read_bytes()
    assert who != user_id("http://127.0.0.1:1/api/v1", "sk_live_secret_value")


async def test_pruning_drops_a_bounded_batch_of_rows_past_retention(ledgers):
    from flora_mcp.ledger import book

    a, _ = ledgers
    who = user()
    for n in range(5):
        await a.begin(who, [intent(f"k{n}")], budget_usd=None, window_seconds=3600)
    now = time.time()
    assert await a.runs.prune(who, now + 1, limit=3) == 3  # as if all five were past retention: 3 at a time
    assert len((await a.page(who, Query(), 3600)).rows) == 2
    assert await a.runs.prune(who, now - book.RETENTION_SECONDS, limit=3) == 0  # nothing that old


async def test_list_pages_filter_in_the_store_and_their_totals_follow_the_filter(ledgers):
    a, b = ledgers
    who = user()
    for n in range(4):
        project = "prj_a" if n % 2 else "prj_b"
        await a.begin(who, [intent(f"k{n}", body={"p": n}, usd=0.1, details={"project_id": project})],
                      budget_usd=None, window_seconds=3600)
        await a.started(who, f"k{n}", f"run_{n}")
    await b.observe(who, "run_1", "completed", 0.08)
    page = await b.page(who, Query(project_id="prj_a", limit=1), 3600)
    assert [r["run_id"] for r in page.rows] == ["run_3"] and page.matching == 2
    assert (page.spent_usd, page.held_usd) == (0.08, 0.1)  # this project's runs only
    done = await b.page(who, Query(status="completed"), 3600)
    assert [r["run_id"] for r in done.rows] == ["run_1"] and done.matching == 1
    assert [r["run_id"] for r in await b.following(who)] == ["run_3", "run_2", "run_0"]
    assert await b.totals(who, 3600) == (0.08, 0.3)


async def test_a_status_check_that_learns_nothing_writes_nothing(ledgers):
    a, _ = ledgers
    who = user()
    await a.begin(who, [intent("k")], budget_usd=None, window_seconds=3600)
    await a.started(who, "k", "run_k")
    await a.observe(who, "run_k", "running", 0.0)
    calls = []
    decide = a.runs.decide

    async def counting(*args, **kw):
        calls.append(args)
        return await decide(*args, **kw)

    a.runs.decide = counting
    for _ in range(3):
        assert await a.observe(who, "run_k", "running", 0.0) is None
    assert calls == []  # read only: no transaction, no lock


async def test_the_hourly_budget_sums_always_equal_the_rows_they_sum(ledgers, monkeypatch):
    """The window's totals come from per-hour sums moved with each change; after starts, settlements,
    releases and resends over ten hours, they equal a sum over the rows themselves, for any window."""
    import random

    from flora_mcp.ledger import Reads

    a, b = ledgers
    who, clock = user(), [1_796_400_000.0]
    monkeypatch.setattr("flora_mcp.ledger.time.time", lambda: clock[0])
    rng = random.Random(7)
    live: list[tuple[str, str]] = []
    for n in range(60):
        clock[0] += rng.uniform(60, 1200)
        ledger = a if n % 2 else b
        key = f"k{n}"
        await ledger.begin(who, [intent(key, body={"n": n}, usd=round(rng.uniform(0.01, 0.2), 3))],
                           budget_usd=1000, window_seconds=86400)
        fate = rng.random()
        if fate < 0.15:
            await ledger.release(who, key)
        elif fate < 0.3:
            await ledger.outcome_unknown(who, key, "dropped")
        else:
            await ledger.started(who, key, f"run_{n}")
            live.append((key, f"run_{n}"))
        if live and rng.random() < 0.6:
            _, run_id = live.pop(rng.randrange(len(live)))
            await ledger.observe(who, run_id, rng.choice(["completed", "failed", "running"]),
                                 round(rng.uniform(0, 0.25), 3))
    for hours_back in (0.5, 1, 2.7, 5, 9.99, 24):
        since = clock[0] - hours_back * 3600
        from_hours = (await a.runs.fetch(who, Reads(window_since=since), clock[0])).totals
        _, spent, held = await a.runs.summary(who, Query(), since)
        assert from_hours == (pytest.approx(spent, abs=1e-6), pytest.approx(held, abs=1e-6)), hours_back


async def test_begins_of_one_account_at_once_each_see_the_ones_before(ledgers):
    """Many begins of one account at once (on PostgreSQL, decided together in one transaction): each reads
    what the ones before it wrote, so an identical request starts once, a refusal writes nothing, and the
    budget holds to the cent."""
    a, b = ledgers
    who = user()
    outcomes: list[str] = []
    same: list[str] = []

    async def try_start(ledger, body: dict, usd: float) -> None:
        said = same if body["prompt"] == "the same" else outcomes
        try:
            [decision] = await ledger.begin(who, [intent(body=body, usd=usd)], budget_usd=1.0, window_seconds=3600)
            said.append(decision.kind)
        except OverBudget:
            said.append("refused")

    async with anyio.create_task_group() as tg:
        for n in range(8):  # the same request 8 times at once: one start, the others wait for it
            tg.start_soon(try_start, a if n % 2 else b, {"prompt": "the same"}, 0.1)
        for n in range(30):  # 30 different ones: exactly 9 more fit in 1.0 after the first 0.1
            tg.start_soon(try_start, a if n % 2 else b, {"prompt": f"p{n}"}, 0.1)
    # Whichever came first: the same request started once and the others waited for it (unless the
    # budget was already gone when it came: then all 8 were refused); exactly 10 starts in all.
    assert sorted(same) in (["start"] + ["wait"] * 7, ["refused"] * 8)
    assert outcomes.count("start") + same.count("start") == 10
    assert outcomes.count("refused") + same.count("refused") == 38 - 10 - same.count("wait")
    spent, held = await b.totals(who, 3600)
    assert spent == 0 and held == pytest.approx(1.0)
    assert (await a.page(who, Query(limit=100), 3600)).matching == 10


@pytest.mark.slow
async def test_a_begin_given_up_while_waiting_for_its_group_is_never_recorded(postgres_url):
    """PostgreSQL's group commit: a caller that gives up while its begin waits for the account's next
    transaction is dropped (nothing recorded, nothing reserved); the begins around it are recorded."""
    import psycopg

    ledger, who = open_ledger(postgres_url), user()
    try:
        await ledger.totals(who, 3600)  # the tables exist
        async with await psycopg.AsyncConnection.connect(postgres_url) as holder:
            # Another replica holds the account's lock: the first group's transaction waits for it.
            await holder.execute("INSERT INTO ledger_users (user_id) VALUES (%s) ON CONFLICT DO NOTHING", (who,))
            await holder.execute("SELECT 1 FROM ledger_users WHERE user_id = %s FOR UPDATE", (who,))
            decided: dict[str, str] = {}
            gives_up = anyio.CancelScope()

            async def begin(name: str, scope: anyio.CancelScope | None = None) -> None:
                with scope or anyio.CancelScope():
                    [decision] = await ledger.begin(who, [intent(name, body={"prompt": name})], budget_usd=1.0,
                                                    window_seconds=3600)
                    decided[name] = decision.kind

            async with anyio.create_task_group() as tg:
                tg.start_soon(begin, "first")
                await anyio.sleep(0.3)  # taken into a transaction: waiting for the lock
                tg.start_soon(begin, "given-up", gives_up)
                tg.start_soon(begin, "after")
                await anyio.sleep(0.3)  # both wait for the next transaction
                gives_up.cancel()
                await anyio.sleep(0.1)
                await holder.commit()  # the lock is free
        assert decided == {"first": "start", "after": "start"}
        page = await ledger.page(who, Query(), 3600)
        assert sorted(row["key"] for row in page.rows) == ["after", "first"]
        assert await ledger.totals(who, 3600) == (0, pytest.approx(0.1))  # two reservations of 0.05, not three
    finally:
        await ledger.aclose()
