"""One FLORA status poll per run, however many wait on it: in one process and across processes."""

from __future__ import annotations

import time

import anyio
import pytest

from flora_mcp.errors import RateLimitError
from flora_mcp.ledger import open_ledger
from flora_mcp.models import Run
from flora_mcp.polling import Answer, RunPolls, wait_for_news
from flora_mcp.sandbox import Sandbox
from tests.helpers import first_ids


class CountingClient:
    """Answers get_run like FLORA (a run that keeps running) and counts the reads."""

    def __init__(self, status: str = "running") -> None:
        self.reads: list[float] = []
        self.status = status

    async def get_run(self, run_id: str) -> Run:
        self.reads.append(time.time())
        await anyio.sleep(0.02)
        return Run(run_id=run_id, status=self.status, progress=10.0, created_at=time.time())


async def _wait(polls: RunPolls, client, seconds: float, estimate: float | None = 5.0) -> Answer:
    deadline = time.monotonic() + seconds
    async with polls.watch("user", ["run_1"], {"run_1": estimate}) as [poll]:
        while True:
            if poll.seconds_until_due() == 0:
                await poll.refresh(client)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or poll.answer.settled:
                return poll.answer
            await wait_for_news([poll], min(remaining, poll.seconds_until_due()))


@pytest.mark.slow
async def test_waiters_in_two_processes_share_one_poll_per_interval(tmp_path):
    """Two RunPolls on one SQLite file stand for two processes; 10 waiters each, for 2.2 s at a
    0.5 s interval: FLORA is asked about once per interval, not once per waiter per interval."""
    store = open_ledger(f"sqlite:///{tmp_path}/l.sqlite3").shared
    here, there = RunPolls(store), RunPolls(store)
    client_here, client_there = CountingClient(), CountingClient()
    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(_wait, here, client_here, 2.2)
            tg.start_soon(_wait, there, client_there, 2.2)
    reads = sorted(client_here.reads + client_there.reads)
    windows = [int(t // 0.5) for t in reads]  # polls are due at the start of a 0.5 s lease window
    assert len(set(windows)) == len(windows), reads  # never two reads in one window, whichever process
    assert len(reads) <= 8, reads  # ~5 windows in 2.2 s (20 waiters without sharing: ~100 reads)
    await store.aclose()


async def test_calls_one_after_another_each_read_flora_afresh():
    """An answer is shared while someone waits; the next call after the last waiter left asks again."""
    polls, client = RunPolls(open_ledger("memory:").shared), CountingClient()
    await _wait(polls, client, 0)
    await _wait(polls, client, 0)
    assert len(client.reads) == 2


async def test_a_nudge_reaches_the_other_process_and_one_of_them_asks_flora(tmp_path):
    store = open_ledger(f"sqlite:///{tmp_path}/l.sqlite3").shared
    here, there = RunPolls(store), RunPolls(store)
    client = CountingClient()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_wait, here, client, 3.0, 60.0)  # 5 s interval: no second poll of its own in 3 s
        tg.start_soon(_wait, there, client, 3.0, 60.0)
        await anyio.sleep(0.5)
        first = len(client.reads)
        assert first in (1, 2)  # one, or two when the processes straddle the first answer's 1 s lease window
        client.status = "completed"
        await there.publish_nudge("user", "run_1")  # a webhook arrived at the other process
        await anyio.sleep(1.0)
        assert len(client.reads) == first + 1  # one read for both processes, at once
    await store.aclose()


def test_a_shared_error_keeps_its_kind_and_retry_after():
    answer = Answer(RateLimitError("Too many requests", status=429, retry_after=7.0), 123.0, 45.0)
    back = Answer.load(answer.dump())
    assert isinstance(back.value, RateLimitError) and back.value.retry_after == 7.0
    assert back.at == 123.0 and back.estimated_seconds == 45.0 and not back.settled
    assert Answer.load("{not json") is None


async def test_ten_concurrent_get_run_calls_make_one_status_read(make_session):
    """Through the server: ten agents' get_run calls on one run share its poll."""
    sandbox = Sandbox(speed=1)
    async with make_session(sandbox) as client:
        ws, prj = await first_ids(client)
        started = (await client.call_tool("start_generation", {
            "type": "video", "prompt": "slow", "model": "t2v-veo-3", "workspace_id": ws, "project_id": prj,
            "wait_seconds": 0})).structured_content
        before = sum(1 for _, m, p in sandbox.state.request_log if m == "GET" and p.startswith("/runs/"))
        rows = []

        async def one() -> None:
            result = await client.call_tool("get_run", {"run_id": started["run_id"], "wait_seconds": 1})
            rows.append(result.structured_content["status"])

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(one)
    reads = sum(1 for _, m, p in sandbox.state.request_log if m == "GET" and p.startswith("/runs/")) - before
    assert len(rows) == 10 and set(rows) <= {"pending", "running"}
    assert reads <= 2, reads  # the first answer, and at most one more in the 1 s wait
