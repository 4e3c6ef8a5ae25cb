"""The ledger when its store fails: before a paid POST the start is refused (naming the store and the fix,
nothing sent); after it the run ID still reaches the agent and the write is retried; a file deleted or
replaced while serving is refused, not recreated; an unusable ledger stops the server in one line; the
release before schema versions upgrades in place with no run lost."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from mcp.client import Client

from flora_mcp.ledger import Query, open_ledger
from flora_mcp.retry import RetryPolicy
from flora_mcp.sandbox import Sandbox
from flora_mcp.server import create_server
from tests.helpers import call, clean_env, first_ids, settings, text_of

LEGACY = Path(__file__).parent / "data" / "ledger-v0.sqlite3"


def _session(sandbox: Sandbox, path: Path, **overrides) -> Client:
    configured = settings(state_url=f"sqlite:///{path}", max_retries=0, **overrides)
    return Client(create_server(configured, client=sandbox.client(retry=RetryPolicy(max_retries=0))))


def image(ids: tuple[str, str], prompt: str, **extra) -> dict:
    return {"type": "image", "prompt": prompt, "model": "t2i-flux-2-schnell", "workspace_id": ids[0],
            "project_id": ids[1], **extra}


class _Locker:
    """Another process's write lock on the ledger file (a connection in BEGIN IMMEDIATE), held until released."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)

    def hold(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.db.execute("ROLLBACK")
        self.db.close()


# --- before the POST: refused, nothing sent ------------------------------------------------------------------
@pytest.mark.slow
async def test_a_locked_ledger_refuses_the_start_quickly_and_sends_nothing(tmp_path):
    sandbox, path = Sandbox(speed=200), tmp_path / "ledger.sqlite3"
    async with _session(sandbox, path) as client:
        ids = await first_ids(client)
        locker = _Locker(path)
        locker.hold()
        began = time.monotonic()
        result, _ = await call(client, "start_generation", image(ids, "a locked fox"))
        waited = time.monotonic() - began
        locker.release()
        assert result.is_error and waited < 10
        text = text_of(result)
        assert "locked by another process" in text and str(path) in text and "Nothing was started or charged" in text
        assert sandbox.state.charges == []
        _, listed = await call(client, "list_workspaces")  # read-only tools keep working
        assert listed["workspaces"]


async def test_a_ledger_deleted_while_serving_is_refused_not_recreated(tmp_path):
    sandbox, path = Sandbox(speed=200), tmp_path / "ledger.sqlite3"
    async with _session(sandbox, path, wait_seconds=5) as client:
        ids = await first_ids(client)
        _, first = await call(client, "start_generation", image(ids, "before the deletion"))
        assert first["status"] == "completed"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        result, _ = await call(client, "start_generation", image(ids, "after the deletion"))
        assert result.is_error and "deleted or replaced" in text_of(result)
        assert not path.exists()  # not silently started afresh
        assert len(sandbox.state.charges) == 1
        _, again = await call(client, "get_run", {"run_id": first["run_id"]})  # reading runs still works
        assert again["status"] == "completed"


async def test_a_ledger_replaced_while_serving_is_refused(tmp_path):
    sandbox, path = Sandbox(speed=200), tmp_path / "ledger.sqlite3"
    async with _session(sandbox, path) as client:
        ids = await first_ids(client)
        other = tmp_path / "other.sqlite3"
        open_ledger(f"sqlite:///{other}")  # a valid ledger file, but not this server's
        os.replace(other, path)
        result, _ = await call(client, "start_generation", image(ids, "a swapped fox"))
        assert result.is_error and "deleted or replaced" in text_of(result)
        assert sandbox.state.charges == []


# --- after the POST: the run ID reaches the agent, the write is retried --------------------------------------
@pytest.mark.slow
async def test_a_lock_taken_during_the_post_still_answers_with_the_run_and_records_it_later(tmp_path, caplog):
    sandbox, path = Sandbox(speed=200), tmp_path / "ledger.sqlite3"
    async with _session(sandbox, path, wait_seconds=0) as client:
        ids = await first_ids(client)
        sandbox.faults.slow_answers, sandbox.faults.slow_answer_seconds = 1, 1.0
        sandbox.faults.only_paths = ("/generate",)
        locker = _Locker(path)
        answer: dict = {}

        async def start() -> None:
            answer["result"], answer["data"] = await call(client, "start_generation", image(ids, "a late fox"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(start)
            while not sandbox.state.charges:  # the intent is recorded and FLORA has the POST
                await anyio.sleep(0.02)
            locker.hold()  # ...and now another process holds the ledger until after the answer
        data = answer["data"]
        assert not answer["result"].is_error, text_of(answer["result"])
        assert data["run_id"] == sandbox.charged_runs()[0] and data["idempotency_key"]
        assert "could not record it yet" in data["note"] and "keep this run_id" in data["note"]
        assert any(data["run_id"] in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
        locker.release()
        for _ in range(50):  # the background retry records it
            _, listed = await call(client, "list_runs")
            if listed["runs"] and listed["runs"][0][0] == data["run_id"]:
                break
            await anyio.sleep(0.1)
        assert listed["runs"][0][0] == data["run_id"]


# --- at start: one line, no traceback ------------------------------------------------------------------------
def _start(tmp_path: Path, state_url: str) -> subprocess.CompletedProcess:
    env = clean_env(FLORA_API_KEY="sk_live_example", FLORA_STATE_URL=state_url)
    return subprocess.run([sys.executable, "-m", "flora_mcp"], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60, check=False)


@pytest.mark.slow
@pytest.mark.parametrize("state_url, says", [
    ("redis://:secret@127.0.0.1:6379/0", "use postgresql://"),
    ("mysql://db/x", "unknown scheme mysql://"),
    ("{tmp}/corrupt.sqlite3", "is corrupt"),
    ("{tmp}/a-file/ledger.sqlite3", "cannot be used"),
])
def test_an_unusable_ledger_stops_the_server_in_one_line(tmp_path, state_url, says):
    (tmp_path / "corrupt.sqlite3").write_bytes(b"not a database at all" * 400)
    (tmp_path / "a-file").write_text("a file where a directory should be")
    done = _start(tmp_path, state_url.format(tmp=tmp_path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flora-mcp: FLORA_STATE_URL") and says in lines[0], done.stderr
    assert "secret" not in done.stderr and "Traceback" not in done.stderr


def test_a_new_ledger_file_and_directory_are_private_whatever_the_umask(tmp_path):
    path = tmp_path / "state" / "deeper" / "ledger.sqlite3"
    old = os.umask(0)
    try:
        open_ledger(f"sqlite:///{path}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


# --- the release before schema versions upgrades in place -----------------------------------------------------
async def test_a_ledger_from_the_previous_release_upgrades_in_place_with_no_run_lost(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    shutil.copy(LEGACY, path)
    ledgers = [open_ledger(f"sqlite:///{path}") for _ in range(2)]  # two processes opening it at once is fine
    ledger = ledgers[0]
    for user in ("alice", "bob"):
        page = await ledger.page(user, Query(limit=100), 10 * 365 * 86400)
        assert page.matching == 6
        statuses = {r["key"]: r["status"] for r in page.rows}
        assert statuses == {f"{user}-k0": "completed", f"{user}-k1": "completed", f"{user}-k2": "completed",
                            f"{user}-k3": "pending", f"{user}-k4": "unknown", f"{user}-k5": "starting"}
        assert (await ledger.run(user, f"run_{user}_3"))["key"] == f"{user}-k3"
        assert page.spent_usd == pytest.approx(0.24)
        learned = await ledger.calibration(user, "t2i-flux-2-pro")  # relearned per account from its own runs
        assert learned.scope == "model" and learned.runs == 3 and learned.ratio == pytest.approx(0.8)
    assert await ledger.shared.get("oauth:client:c1") == '{"client_id":"c1"}'
    db = sqlite3.connect(path)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
    assert "runs" not in tables and "calibration" not in tables
    db.close()
    [decision] = await ledger.begin("alice", [_intent("alice-k3", "alice prompt 3")], budget_usd=None,
                                    window_seconds=3600)
    assert decision.kind == "follow" and decision.row["run_id"] == "run_alice_3"  # the same key: the same run
    for each in ledgers:
        await each.aclose()


def _intent(key: str, prompt: str):
    from flora_mcp.ledger import Intent, request_fingerprint

    return Intent(key=key, key_given=True, tool="start_generation",
                  fingerprint=request_fingerprint("start_generation", {"prompt": prompt}), reserve_usd=0.1,
                  estimated_usd=0.1)


def test_the_lock_holder_helper_really_blocks_writers(tmp_path):
    """The faults above rely on _Locker: another connection cannot write while it holds the lock."""
    path = tmp_path / "l.sqlite3"
    open_ledger(f"sqlite:///{path}")
    locker = _Locker(path)
    locker.hold()
    other = sqlite3.connect(path, timeout=0.1, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        other.execute("BEGIN IMMEDIATE")
    locker.release()


# --- PostgreSQL restarted mid-run ----------------------------------------------------------------------------
@pytest.mark.slow
async def test_postgresql_restarted_mid_run_refuses_while_down_and_carries_on_after(postgres_server):
    from flora_mcp.ledger import LedgerUnavailable
    from tests.helpers import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        ledger = open_ledger(server.url)
        [first] = await ledger.begin("u", [_intent("before", "before the restart")], budget_usd=1.0,
                                     window_seconds=3600)
        await ledger.started("u", first.key, "run_before")
        server.stop()
        began = time.monotonic()
        with pytest.raises(LedgerUnavailable) as down:
            await ledger.begin("u", [_intent("during", "while it is down")], budget_usd=1.0, window_seconds=3600)
        assert f"127.0.0.1:{server.port}/postgres" in str(down.value) and "PostgreSQL is running" in str(down.value)
        assert time.monotonic() - began < 15
        server.start()
        [again] = await ledger.begin("u", [_intent("before", "before the restart")], budget_usd=1.0,
                                     window_seconds=3600)
        assert again.kind == "follow" and again.row["run_id"] == "run_before"  # committed before: kept
        [after] = await ledger.begin("u", [_intent("after", "after the restart")], budget_usd=1.0,
                                     window_seconds=3600)
        assert after.kind == "start" and await ledger.totals("u", 3600) == (0.0, 0.2)
        await ledger.aclose()
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(server.base, ignore_errors=True)


# --- a full disk ----------------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs (root only; skipped where mounting is not allowed)."""
    where = tmp_path / "small"
    where.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)], capture_output=True, check=False
    ).returncode == 0
    if not mounted:
        pytest.skip("cannot mount a small tmpfs here (needs root and mount rights)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


@pytest.mark.slow
async def test_a_full_disk_refuses_the_start_saying_so_and_keeps_what_was_written(small_disk):
    from flora_mcp.ledger import Intent, LedgerUnavailable, request_fingerprint

    path = small_disk / "ledger.sqlite3"
    ledger = open_ledger(f"sqlite:///{path}")
    written = 0
    with pytest.raises(LedgerUnavailable) as full:
        for n in range(200):
            intents = [Intent(key=f"k{n}-{i}", key_given=True, tool="start_generation",
                              fingerprint=request_fingerprint("start_generation", {"n": n, "i": i}), reserve_usd=0.01,
                              estimated_usd=0.01, details={"label": "x" * 4000}) for i in range(5)]
            await ledger.begin("u", intents, budget_usd=None, window_seconds=3600)
            written += 5
    assert "disk is full" in str(full.value) and str(path) in str(full.value)
    page = await ledger.page("u", Query(limit=100), 3600)
    assert page.matching == written and written > 0  # every acknowledged start is still there
    await ledger.aclose()
    sandbox = Sandbox(speed=200)
    async with _session(sandbox, path, wait_seconds=0) as client:
        ids = await first_ids(client)
        result, data = await call(client, "start_generation", image(ids, "a fox with no room"))
    # Whether the intent still fits (SQLite reuses freed pages) decides which of the two clear answers comes:
    if result.is_error:  # refused before the POST: nothing sent
        assert "disk is full" in text_of(result) and "Nothing was started or charged" in text_of(result)
        assert sandbox.state.charges == []
    else:  # the intent fit, recording the run ID did not: the agent still gets it
        assert data["run_id"] == sandbox.charged_runs()[0] and "could not record it yet" in data["note"]
