"""The ledger at scale: what one paid start costs the ledger as a user's history grows, on every store.

    python benchmarks/ledger_scale.py [--quick] [--hosted]
    python benchmarks/ledger_scale.py --concurrent-only      # the 60 starts of one user at once (~20 s)
    python benchmarks/ledger_scale.py --replicas [--rate 200 --seconds 10]   # needs the hosted extra (~1 min)

Prints one table, each figure beside its goal from issue 21 (numbers are reported, never asserted):
  - one start's ledger work (begin -> started -> observe running -> observe completed) with 0, 1,000,
    5,000 and 20,000 earlier rows for the user, on SQLite (a file) and PostgreSQL (a real server, fsync on);
  - 60 starts of one user at once with 5,000 rows (one process, two ledgers on the store);
  - --replicas: 2 hosted processes (uvicorn) on one PostgreSQL behind the sandbox, 50 users with 1,000 rows
    each, an open-loop load of paid starts (200/s for 10 s): the ledger's share of each call, timed inside
    the servers, and each user's charges against the budget after the run.
  - list_runs with 20,000 rows, through the MCP client (in memory) on a SQLite file;
  - start_generations x20 end to end (MCP client in memory, the sandbox in process) with 0 and 5,000 rows.
History is spread over the 30 days the ledger keeps (so ~1/30 of it is inside the 24 h budget window,
as for a user with a steady month of runs); the "all in window" column puts every row inside the window.
Each start figure is the lowest of 3 medians (sizes interleaved per round): the machine is shared.
Bounded: about two minutes (plus one with --hosted); PostgreSQL is skipped (with a note) where its
binaries are missing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flora_mcp.ledger import Intent, open_ledger, request_fingerprint, sql
from flora_mcp.ledger.book import RETENTION_SECONDS

SIZES = (0, 1_000, 5_000, 20_000)
WINDOW = 24 * 3600.0


def history(n: int, now: float, spread: float) -> list[dict]:
    """`n` earlier rows: mostly settled, a few unfinished, over `spread` seconds before now."""
    rows = []
    for i in range(n):
        created = now - 60 - random.random() * spread
        status = random.choices(("completed", "failed", "pending", "unknown"), (90, 6, 2, 2))[0]
        rows.append({"key": f"old-{i}-{uuid.uuid4().hex[:8]}", "tool": "start_generation",
                     "fingerprint": uuid.uuid4().hex, "run_id": f"run_{uuid.uuid4().hex[:16]}",
                     "status": status, "reserved_usd": 0.0 if status in ("completed", "failed") else 0.05,
                     "charged_usd": 0.04 if status == "completed" else None, "project_id": f"prj_{i % 7}",
                     "created": created, "updated": created, "estimated_usd": 0.05, "owner": "bench",
                     "attempts": 1, "model": "t2i-flux-2-schnell", "label": f"a prompt number {i}",
                     "kind": "generation", "calibration": 1.0})
    return rows


def fill(url: str, user: str, rows: list[dict]) -> None:
    """Write `rows` straight into the store (the same INSERT the ledger uses) and sum their hours, in one
    transaction."""
    if not rows:
        return
    params = [sql.encode(user, r) for r in rows]
    if url.startswith("postgresql://"):
        import psycopg

        clear, rebuild = sql.rebuild_budget_hours(sql.POSTGRES)
        with psycopg.connect(url) as conn, conn.cursor() as cur:
            cur.executemany(sql.POSTGRES.q(sql.INSERT), params)
            cur.execute(clear, (user,))
            cur.execute(rebuild, (user,))
        return
    import sqlite3

    clear, rebuild = sql.rebuild_budget_hours(sql.SQLITE)
    db = sqlite3.connect(url.removeprefix("sqlite://"))
    with db:
        db.executemany(sql.INSERT, params)
        db.execute(clear, (user,))
        db.execute(rebuild, (user,))
    db.close()


def intent(prompt: str, usd: float = 0.05) -> Intent:
    body = {"prompt": prompt}
    return Intent(key=uuid.uuid4().hex, key_given=False, tool="start_generation",
                  fingerprint=request_fingerprint("start_generation", body), reserve_usd=usd, estimated_usd=usd,
                  details={"model": "t2i-flux-2-schnell", "label": prompt[:40], "calibration": 1.0})


async def one_start(ledger, user: str, n: int) -> None:
    [decision] = await ledger.begin(user, [intent(f"start {n} {uuid.uuid4().hex}")], budget_usd=1e6,
                                    window_seconds=WINDOW)
    run_id = f"run_{uuid.uuid4().hex[:16]}"
    await ledger.started(user, decision.key, run_id, estimated_seconds=8)
    await ledger.observe(user, run_id, "running", 0.0)
    await ledger.observe(user, run_id, "completed", 0.04)


async def prepared_user(url: str, size: int, spread: float) -> str:
    """A new user with `size` earlier rows over `spread` seconds."""
    user = uuid.uuid4().hex
    ledger = open_ledger(url)
    try:
        await ledger.totals(user, WINDOW)  # the schema exists
        fill(url, user, history(size, time.time(), spread))
    finally:
        await ledger.aclose()
    return user


async def start_ms(url: str, user: str, repeats: int) -> float:
    """Median ms of one start's ledger work for `user`."""
    ledger = open_ledger(url)
    try:
        await one_start(ledger, user, -1)  # warm: connections, statement caches
        times = []
        for n in range(repeats):
            began = time.perf_counter()
            await one_start(ledger, user, n)
            times.append((time.perf_counter() - began) * 1000)
    finally:
        await ledger.aclose()
    return statistics.median(times)


def start_costs(url: str, spread: float, repeats: int, rounds: int = 3) -> list[float]:
    """Per size, the lowest of `rounds` medians, the sizes interleaved in each round (the machine is shared:
    another process's burst lands in one round, not in one size)."""
    users = {size: anyio.run(prepared_user, url, size, spread) for size in SIZES}
    best = {size: float("inf") for size in SIZES}
    for _ in range(rounds):
        for size in SIZES:
            best[size] = min(best[size], anyio.run(start_ms, url, users[size], repeats))
    return [best[size] for size in SIZES]


async def concurrent_per_second(url: str, size: int, starts: int) -> tuple[float, bool]:
    """`starts` starts of one user at once, on two ledgers sharing the store; starts/s, and whether the
    budget held exactly (a budget for exactly half of them: half pass, half are refused)."""
    from flora_mcp.ledger import OverBudget

    user = uuid.uuid4().hex
    ledgers = [open_ledger(url), open_ledger(url)]
    await ledgers[0].totals(user, WINDOW)  # the schema exists
    fill(url, user, history(size, time.time(), RETENTION_SECONDS))
    _, held_before = await ledgers[0].totals(user, WINDOW)
    spent_before, _ = await ledgers[0].totals(user, WINDOW)
    budget = spent_before + held_before + 0.05 * (starts // 2)
    passed = []

    async def start(n: int) -> None:
        ledger = ledgers[n % 2]
        try:
            [decision] = await ledger.begin(user, [intent(f"together {n}")], budget_usd=budget + 1e-7,
                                            window_seconds=WINDOW)
        except OverBudget:
            return
        await ledger.started(user, decision.key, f"run_{uuid.uuid4().hex[:16]}")
        passed.append(n)

    try:
        for each in ledgers:
            await each.totals(user, WINDOW)  # warm
        began = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for n in range(starts):
                tg.start_soon(start, n)
        elapsed = time.perf_counter() - began
    finally:
        for each in ledgers:
            await each.aclose()
    return starts / elapsed, len(passed) == starts // 2


async def through_mcp(state_url: str, size: int, repeats: int) -> tuple[float, float]:
    """(median ms of start_generations x20, median ms of list_runs) for a user with `size` earlier rows."""
    from mcp.client import Client

    from flora_mcp.config import Settings
    from flora_mcp.retry import RetryPolicy
    from flora_mcp.sandbox import Sandbox
    from flora_mcp.server import create_server

    sandbox = Sandbox(speed=1000)
    client = sandbox.client(retry=RetryPolicy(max_retries=0))
    ledger = open_ledger(state_url)
    await ledger.totals(client.user_id, WINDOW)  # the schema exists
    await ledger.aclose()
    fill(state_url, client.user_id, history(size, time.time(), RETENTION_SECONDS))
    settings = Settings(state_url=state_url, wait_seconds=0, budget_usd=1e6)
    batch, listing = [], []
    async with Client(create_server(settings, client=client)) as mcp:
        ws = (await mcp.call_tool("list_workspaces", {})).structured_content["workspaces"][0]["workspace_id"]
        prj = (await mcp.call_tool("list_projects", {"workspace_id": ws})).structured_content["projects"][0]
        ids = {"workspace_id": ws, "project_id": prj["project_id"]}
        for r in range(repeats + 1):
            items = [{"type": "image", "prompt": f"batch {r} item {n} {uuid.uuid4().hex[:6]}",
                      "model": "t2i-flux-2-schnell"} for n in range(20)]
            began = time.perf_counter()
            result = await mcp.call_tool("start_generations", {"items": items, **ids, "wait_seconds": 0})
            took = (time.perf_counter() - began) * 1000
            assert not result.is_error, result.content[0].text
            began = time.perf_counter()
            listed = await mcp.call_tool("list_runs", {})
            took_list = (time.perf_counter() - began) * 1000
            assert not listed.is_error
            if r:  # the first round warms caches (models, projects)
                batch.append(took)
                listing.append(took_list)
    return statistics.median(batch), statistics.median(listing)


async def hosted_latencies(base: str, keys: list[str], starts_per_user: int) -> list[float]:
    """Every user's paid starts at once against the hosted server (one MCP session per user); seconds each."""
    from tests.helpers import mcp_http

    latencies: list[float] = []

    async def user(key: str) -> None:
        async with mcp_http(base, key) as session:  # each sandbox key is an account with its own workspace
            ws = (await session.call_tool("list_workspaces", {})).structured_content["workspaces"][0]["workspace_id"]
            prj = (await session.call_tool("list_projects", {"workspace_id": ws})).structured_content["projects"][0]
            ids = {"workspace_id": ws, "project_id": prj["project_id"]}

            async def one(n: int) -> None:
                began = time.perf_counter()
                result = await session.call_tool("start_generation", {
                    "type": "image", "prompt": f"hosted {key[-6:]} {n} {uuid.uuid4().hex[:8]}",
                    "model": "t2i-flux-2-schnell", "wait_seconds": 0, **ids})
                latencies.append(time.perf_counter() - began)
                assert not result.is_error, result.content[0].text

            async with anyio.create_task_group() as tg:
                for n in range(starts_per_user):
                    tg.start_soon(one, n)

    async with anyio.create_task_group() as tg:
        for key in keys:
            tg.start_soon(user, key)
    return latencies


def hosted(stores: dict, users: int = 10, starts_per_user: int = 10) -> list[str]:
    """2 uvicorn workers, `users` users x `starts_per_user` paid starts at once, with 0 and 1,000 earlier
    rows per user: p50/p99 of a call, per store."""
    import os
    import subprocess

    from flora_mcp._ids import user_id
    from tests.helpers import free_port, running_sandbox, wait_healthy

    lines = []
    with running_sandbox(speed=1000) as flora:
        for name, url in stores.items():
            results = {}
            for size in (0, 1_000):
                state = url()
                keys = [f"sk_sandbox_h{size}_{n}_{uuid.uuid4().hex[:6]}" for n in range(users)]

                async def prepare(state: str = state, keys: list[str] = keys, size: int = size) -> None:
                    ledger = open_ledger(state)
                    await ledger.totals("warm", WINDOW)  # the schema exists
                    await ledger.aclose()
                    for key in keys:
                        fill(state, user_id(flora, key), history(size, time.time(), RETENTION_SECONDS))

                anyio.run(prepare)
                port = free_port()
                env = {k: v for k, v in os.environ.items() if not k.startswith("FLORA_")} | {
                    "FLORA_BASE_URL": flora, "FLORA_STATE_URL": state, "FLORA_LOG_LEVEL": "WARNING",
                    "FLORA_RATE_LIMIT": "0"}
                proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "flora_mcp.transports.http:create_app",
                                         "--factory", "--workers", "2", "--host", "127.0.0.1", "--port", str(port),
                                         "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
                try:
                    wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
                    base = f"http://127.0.0.1:{port}"
                    anyio.run(hosted_latencies, base, keys, 2)  # warm both workers
                    took = anyio.run(hosted_latencies, base, keys, starts_per_user)
                finally:
                    proc.terminate()
                    proc.wait(10)
                results[size] = (statistics.median(took) * 1000, pct(took, 99) * 1000)
            ratio = results[1_000][1] / results[0][1]
            lines.append(f"| hosted, 2 workers, {users} users x {starts_per_user} starts at once: p50 / p99 ms | "
                         f"{name} | {results[0][0]:.0f} / {results[0][1]:.0f} | {results[1_000][0]:.0f} / "
                         f"{results[1_000][1]:.0f} | | | p99 at 1k rows within 1.5x of empty: {ratio:.2f}x |")
    return lines


# --- two processes on one PostgreSQL, an open-loop load (--replicas) --------------------------------------
def serve_timed(port: int, out: str) -> None:
    """A hosted flora-mcp (uvicorn) whose Ledger methods add their time to the tool call that awaits them;
    at exit, writes [first ledger call's time, seconds in the ledger, begins] per call to `out`.
    The ledger's share of a call is measured inside the server (it includes waits for the event loop, so
    it is an upper bound), and the product code is untouched."""
    import contextvars
    import functools
    import inspect
    import json

    import uvicorn

    from flora_mcp.ledger import Ledger

    this_call: contextvars.ContextVar[list | None] = contextvars.ContextVar("this_call", default=None)
    calls: list[list] = []

    def timed(name: str, method):
        @functools.wraps(method)
        async def wrapper(self, *args, **kwargs):
            began = time.perf_counter()
            try:
                return await method(self, *args, **kwargs)
            finally:
                spent = time.perf_counter() - began
                mine = this_call.get()
                if mine is None:  # the call's first ledger method: set in the call's own context
                    mine = [time.time() - spent, 0.0, 0, {}]
                    this_call.set(mine)
                    calls.append(mine)
                mine[1] += spent
                mine[2] += name == "begin"
                mine[3][name] = mine[3].get(name, 0.0) + spent

        return wrapper

    for name, method in list(vars(Ledger).items()):
        if not name.startswith("_") and name != "aclose" and inspect.iscoroutinefunction(method):
            setattr(Ledger, name, timed(name, method))
    lags: list[list] = []  # [when, how late a 10 ms sleep woke]: the event loop's own delay, for comparison
    original_begin = Ledger.begin

    async def probe() -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append([time.time(), time.perf_counter() - asked - 0.01])

    async def begin_and_probe(self, *args, **kwargs):  # the first begin starts the probe on the server's loop
        if not lags:
            lags.append([0.0, 0.0])
            asyncio.get_running_loop().create_task(probe())
        return await original_begin(self, *args, **kwargs)

    Ledger.begin = begin_and_probe
    try:  # stopped by SIGINT: uvicorn shuts down, then raises KeyboardInterrupt
        uvicorn.run("flora_mcp.transports.http:create_app", factory=True, host="127.0.0.1", port=port,
                    log_level="warning")
    finally:
        with open(out, "w") as f:
            json.dump({"calls": calls, "lags": lags[1:]}, f)


def _json_of(body: bytes) -> dict:
    """A JSON-RPC answer, sent as JSON or as one server-sent event."""
    import json

    text = body.decode()
    if text.lstrip().startswith("{"):
        return json.loads(text)
    events = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
    return next(e for e in reversed(events) if "id" in e)  # the answer, after any notifications


async def replicas_load(ports: list[int], keys: list[str], rate: float, seconds: float) -> dict:
    """Open loop: Poisson arrivals at `rate` paid starts/s for `seconds`, each to a random user, sent
    alternately to the two processes (each user has a keep-alive connection to each; a call waits behind
    that connection's earlier call). Latency counts from the scheduled arrival."""
    from benchmarks.loadgen import INIT, _Connection, _post, pct

    loop = asyncio.get_running_loop()

    async def connect(port: int, key: str) -> _Connection:
        _, conn = await loop.create_connection(_Connection, "127.0.0.1", port)
        host = f"127.0.0.1:{port}"
        status, _ = await conn.call(_post(host, "/mcp", {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                                                          "params": INIT}, key))
        assert status == 200, status
        await conn.call(_post(host, "/mcp", {"jsonrpc": "2.0", "method": "notifications/initialized"}, key))
        return conn

    async def tool(conn: _Connection, port: int, key: str, name: str, args: dict) -> dict:
        status, body = await conn.call(_post(f"127.0.0.1:{port}", "/mcp", {
            "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": args}}, key))
        if status != 200:
            return {"isError": True, "content": f"HTTP {status}: {body[:300]!r}"}
        answer = _json_of(body)
        return answer.get("result") or {"isError": True, "content": f"{answer.get('error')} {body[:300]!r}"}

    sessions = {}  # key -> ([conn per port], ids)
    for key in keys:
        conns = [await connect(port, key) for port in ports]
        ws = (await tool(conns[0], ports[0], key, "list_workspaces", {}))["structuredContent"]["workspaces"][0]
        prj = (await tool(conns[0], ports[0], key, "list_projects", {"workspace_id": ws["workspace_id"]}))
        sessions[key] = (conns, {"workspace_id": ws["workspace_id"],
                                 "project_id": prj["structuredContent"]["projects"][0]["project_id"]})
    rng = random.Random(21)
    arrivals, t = [], 0.0
    while (t := t + rng.expovariate(rate)) < seconds:
        arrivals.append((t, rng.choice(keys)))
    locks = {(key, n): asyncio.Lock() for key in keys for n in range(len(ports))}
    latencies: list[float] = []
    outcome = {"started": 0, "refused (budget)": 0, "errors": 0}
    window = (time.time(), 0.0)
    started = time.perf_counter()

    async def one(i: int, at: float, key: str) -> None:
        await asyncio.sleep(max(0.0, started + at - time.perf_counter()))
        n = i % len(ports)
        conns, ids = sessions[key]
        async with locks[(key, n)]:  # HTTP/1.1: one call in flight per connection
            if conns[n].transport.is_closing():  # idle past the server's keep-alive: connect again
                conns[n] = await connect(ports[n], key)
            result = await tool(conns[n], ports[n], key, "start_generation", {
                "type": "image", "prompt": f"replicas {i} {uuid.uuid4().hex[:8]}", "model": "t2i-flux-2-schnell",
                "wait_seconds": 0, **ids})
        latencies.append(time.perf_counter() - (started + at))
        text = str(result.get("content", ""))
        if not result.get("isError"):
            outcome["started"] += 1
        elif "budget" in text.lower():
            outcome["refused (budget)"] += 1
        else:
            outcome["errors"] += 1
            if outcome["errors"] == 1:
                print(f"(first error: {text[:300]})", file=sys.stderr)

    await asyncio.gather(*(one(i, at, key) for i, (at, key) in enumerate(arrivals)))
    elapsed = time.perf_counter() - started
    window = (window[0], time.time())
    for conns, _ in sessions.values():
        for conn in conns:
            conn.transport.close()
    return {"offered": len(arrivals) / seconds, "served": len(latencies) / elapsed, "calls": len(latencies),
            "p50": pct(latencies, 50) * 1000, "p99": pct(latencies, 99) * 1000, "window": window, **outcome}


def replicas(server: str, users: int = 50, rows: int = 1_000, rate: float = 200.0, seconds: float = 10.0,
             budget: float = 0.5) -> list[str]:
    """2 hosted processes on one PostgreSQL behind the sandbox, `users` users with `rows` earlier rows
    each, `rate` paid starts/s offered for `seconds`: the ledger's share of a call (inside the servers),
    and the budget after the run (each user's charges at the sandbox and in the ledger, against it)."""
    import json
    import os
    import signal
    import subprocess
    from collections import defaultdict

    import httpx2

    from flora_mcp._ids import user_id
    from tests.helpers import free_port, new_database, running_sandbox, wait_healthy

    state = new_database(server)
    lines = []
    with ExitStack() as stack:
        flora = stack.enter_context(running_sandbox(speed=1000))
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        keys = [f"sk_sandbox_r{n}_{uuid.uuid4().hex[:6]}" for n in range(users)]

        async def prepare() -> None:
            ledger = open_ledger(state)
            await ledger.totals("warm", WINDOW)  # the schema exists
            await ledger.aclose()

        anyio.run(prepare)
        for key in keys:  # a month of history before the budget window: the window holds this run's starts only
            fill(state, user_id(flora, key), history(rows, time.time() - WINDOW, RETENTION_SECONDS - WINDOW - 3600))
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLORA_")} | {
            "FLORA_BASE_URL": flora, "FLORA_STATE_URL": state, "FLORA_LOG_LEVEL": "WARNING",
            "FLORA_RATE_LIMIT": "0", "FLORA_BUDGET_USD": str(budget)}
        ports = [free_port(), free_port()]
        outs = [f"{tmp}/calls-{port}.json" for port in ports]
        procs = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve-timed", str(port), out],
                                  env=env, stdout=subprocess.DEVNULL,
                                  stderr=stack.enter_context(open(f"{out}.log", "w")))
                 for port, out in zip(ports, outs, strict=True)]
        try:
            for port, proc in zip(ports, procs, strict=True):
                wait_healthy(f"http://127.0.0.1:{port}/healthz", proc, timeout=60)
            loop = new_loop()
            try:
                got = loop.run_until_complete(replicas_load(ports, keys, rate, seconds))
            finally:
                loop.close()
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGINT)  # serve_timed writes its calls on the way out
            for proc in procs:
                proc.wait(30)
        for out in outs:
            if not os.path.exists(out):
                print(Path(f"{out}.log").read_text()[-3000:], file=sys.stderr)
        written = [json.loads(Path(out).read_text()) for out in outs]
        inside = lambda when: got["window"][0] - 1 <= when <= got["window"][1]
        timed = [call for each in written for call in each["calls"] if call[2] and inside(call[0])]
        lags = [lag * 1000 for each in written for when, lag in each["lags"] if inside(when)]
        shares = [call[1] * 1000 for call in timed]
        by_method = defaultdict(list)  # where the time goes: each method's median ms per call
        for call in timed:
            for name, spent in call[3].items():
                by_method[name].append(spent * 1000)
        print("(ledger methods per call, p50 / p99 ms: " + ", ".join(
            f"{name} {pct(v, 50):.1f} / {pct(v, 99):.1f}" for name, v in sorted(by_method.items())) + ")",
              file=sys.stderr)
        charges = defaultdict(float)
        for charge in httpx2.get(flora.removesuffix("/api/v1") + "/_sandbox").json()["charges"]:
            charges[charge["account"]] += charge["usd"]
        counted = []

        async def ledger_view() -> None:
            ledger = open_ledger(state)
            for key in keys:
                spent, held = await ledger.totals(user_id(flora, key), WINDOW)
                counted.append(spent + held)
            await ledger.aclose()

        anyio.run(ledger_view)
        over = sum(1 for usd in charges.values() if usd > budget + 1e-9)
        lines.append(
            f"| {len(ports)} processes on one PostgreSQL, {users} users x {rows:,} rows, {got['offered']:.0f} "
            f"paid starts/s offered for {seconds:.0f} s (served {got['served']:.0f}/s: {got['started']} started, "
            f"{got['refused (budget)']} refused by the budget, {got['errors']} errors; load {load()}) | "
            f"ledger's share of a call p50 / p99 ms ({len(shares)} calls, inside the servers): "
            f"{pct(shares, 50):.1f} / {pct(shares, 99):.1f} (the servers' event loops alone: a 10 ms sleep woke "
            f"{pct(lags, 50):.1f} / {pct(lags, 99):.1f} ms late) | goal p99 < 20 ms |")
        lines.append(
            f"| the same: a whole call p50 / p99 ms at the client | {got['p50']:.0f} / {got['p99']:.0f} | |")
        lines.append(
            f"| the same: budget ${budget} per user | sandbox charges per account: max ${max(charges.values()):.3f}, "
            f"{over} of {len(charges)} accounts over; ledger's spent + held per user: max "
            f"${max(counted):.3f} | charges <= budget |")
    return lines


def new_loop():
    from benchmarks.loadgen import new_loop as loadgen_loop

    return loadgen_loop()


def concurrent_line(name: str, url: str) -> str:
    rounds = [anyio.run(concurrent_per_second, url, 5_000, 60) for _ in range(3)]
    rate, exact = statistics.median(r for r, _ in rounds), all(e for _, e in rounds)
    return (f"| 60 starts of one user at once (2 ledgers), starts/s, median of 3 "
            f"({', '.join(f'{r:.0f}' for r, _ in rounds)}; load {load()}) | {name} | | | "
            f"{rate:.0f} (budget exact: {'yes' if exact else 'NO'}) | | >= 200/s |")


def load() -> str:
    """The machine's 1-minute load average (it is shared: a figure means little without it)."""
    import os

    return f"{os.getloadavg()[0]:.2f}"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--hosted", action="store_true", help="also the hosted run (2 uvicorn workers; ~1 min)")
    parser.add_argument("--replicas", action="store_true",
                        help="only the run of 2 processes on one PostgreSQL at 200 paid starts/s (~1 min)")
    parser.add_argument("--rate", type=float, default=200.0, help="--replicas: paid starts/s offered (200)")
    parser.add_argument("--seconds", type=float, default=10.0, help="--replicas: for how long (10)")
    parser.add_argument("--serve-timed", nargs=2, metavar=("PORT", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--concurrent-only", action="store_true",
                        help="only the 60 starts of one user at once (~20 s)")
    args = parser.parse_args()
    if args.serve_timed:
        serve_timed(int(args.serve_timed[0]), args.serve_timed[1])
        return 0
    logging.disable(logging.WARNING)  # the table is the output (the server's own info lines are not)
    repeats = 5 if args.quick else 31
    random.seed(21)
    from tests.helpers import postgres_binaries, running_postgres

    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        stores = {"SQLite": lambda: f"sqlite://{tmp}/{uuid.uuid4().hex}.sqlite3"}
        if postgres_binaries():
            server = stack.enter_context(running_postgres(durable=True))
            stores["PostgreSQL"] = lambda: server
        else:
            print("(PostgreSQL skipped: no binaries; apt-get install postgresql)")
        lines = ["| measure | store | " + " | ".join(f"{s:,} rows" for s in SIZES) + " | goal |",
                 "| --- | --- | " + " | ".join("---" for _ in SIZES) + " | --- |"]
        if args.replicas:
            if "PostgreSQL" not in stores:
                print("(--replicas needs PostgreSQL)")
                return 1
            print("\n".join(replicas(stores["PostgreSQL"](), rate=args.rate, seconds=args.seconds)))
            return 0
        if args.concurrent_only:
            lines += [concurrent_line(name, url()) for name, url in stores.items()]
            print("\n".join(lines))
            return 0
        for name, url in stores.items():
            base = shared = url()
            spread_ms = start_costs(shared, RETENTION_SECONDS, repeats)
            window_ms = start_costs(shared, WINDOW - 120, repeats)
            ratio = spread_ms[-1] / spread_ms[0]
            lines.append(f"| one start's ledger work, ms (history over 30 days) | {name} | "
                         + " | ".join(f"{v:.2f}" for v in spread_ms) + f" | 20k within 3x of empty: {ratio:.1f}x |")
            ratio = window_ms[-1] / window_ms[0]
            lines.append(f"| one start's ledger work, ms (all rows in the 24 h window) | {name} | "
                         + " | ".join(f"{v:.2f}" for v in window_ms) + f" | 20k within 3x of empty: {ratio:.1f}x |")
            lines.append(concurrent_line(name, base))
        e2e = {}
        for size in (0, 5_000, 20_000):
            e2e[size] = anyio.run(through_mcp, stores["SQLite"](), size, max(3, repeats // 2))
        lines.append("| start_generations x20, ms end to end (MCP in memory, sandbox) | SQLite | "
                     f"{e2e[0][0]:.0f} | | {e2e[5_000][0]:.0f} | {e2e[20_000][0]:.0f} | "
                     f"5k within 1.5x of empty: {e2e[5_000][0] / e2e[0][0]:.2f}x |")
        lines.append("| list_runs, ms end to end | SQLite | "
                     f"{e2e[0][1]:.1f} | | {e2e[5_000][1]:.1f} | {e2e[20_000][1]:.1f} | < 50 ms at 20k |")
        if args.hosted:
            lines += hosted(stores)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
