"""One FLORA status poll per run, however many wait on it.

Waiters on a run (tool calls, agents, tasks; processes and replicas that share a ledger) share its
polls and their answers:

- In this process a run being waited on has one RunPoll. A waiter whose answer is due asks it to
  refresh; one refresh runs at a time and the other waiters take its answer. The RunPoll lives while
  someone waits and is dropped with its last waiter, so calls made one after another each read FLORA
  afresh, as before.
- Across processes, a refresh first reads the answer another process published in the shared store.
  When that is stale it takes the run's poll lease for this interval (an atomic counter in the shared
  store: the first taker in the interval wins), asks FLORA, and publishes the answer for the others.
  The loser waits briefly for the winner's answer instead of asking FLORA too.
- The interval follows the run's expected time (about ten polls over the estimate, 0.25-5 s) and backs
  off when the estimate is unknown; a transient error's Retry-After is respected by everyone.
- A nudge (FLORA's webhook said the run settled) makes the next refresh ask FLORA at once, on every
  process. Other processes see nudges and published answers by reading the shared store at a short
  interval (SHARED_CHECK); PostgreSQL LISTEN/NOTIFY could replace that later.

Everything shared is kept with the store's five small-value methods (put, get, take, delete, count),
so any ledger store works. Names are scoped by the ledger's user ID (a hash of FLORA's URL and the
key), so an answer read with one key is never shown to another.
"""

from __future__ import annotations

import json
import logging
import math
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from . import errors
from .errors import FloraError
from .ledger.errors import LedgerUnavailable
from .models import Run

if TYPE_CHECKING:
    from .ledger import SharedValues

logger = logging.getLogger("flora_mcp.polling")

MIN_INTERVAL = 0.25
MAX_INTERVAL = 5.0
UNKNOWN_FIRST_INTERVAL = 1.0  # no estimate: start here and back off 1.5x per answer, up to MAX_INTERVAL
SHARED_CHECK = 0.25  # how often a waiter looks at the shared store for another process's answer or a nudge
PUBLISHED_TTL = 60.0  # a published answer outlives its interval a little, never the run's waiters for long
FIRST_WINDOW = 1.0  # the first answer's lease window, common to every process
LEASE_WINDOW = 3600.0  # a lease named after the answer it replaces: one taker, however late the others come
HOOKED_MIN_INTERVAL = 30.0  # a run FLORA will call back about: polled only as a safety net, this often at most
NUDGE_SECONDS = 2.0  # nudges for one run closer together than this are one nudge
ASK_GRACE = 1.0  # a lease winner that shows no sign of asking within this is taken to be gone
ASK_SECONDS = 10.0  # longest another process's status read is waited for before asking FLORA too


def interval_for(estimated_seconds: float | None, answers: int) -> float:
    """Seconds between polls: ~ten over the estimate; without one, 1 s backing off 1.5x to 5 s."""
    if estimated_seconds:
        return min(max(estimated_seconds / 10, MIN_INTERVAL), MAX_INTERVAL)
    return min(UNKNOWN_FIRST_INTERVAL * 1.5 ** max(answers - 1, 0), MAX_INTERVAL)


@dataclass
class Answer:
    value: Run | FloraError
    at: float  # wall-clock time FLORA was asked (comparable across processes)
    estimated_seconds: float | None = None  # the run's estimate, if the asking process knew it: all then poll alike

    @property
    def settled(self) -> bool:
        """Nothing more will change: a finished run, or an error that is about the run (not found)."""
        if isinstance(self.value, FloraError):
            return not is_transient(self.value)
        return self.value.finished

    def dump(self) -> str:
        if isinstance(self.value, FloraError):
            e = self.value
            value: dict[str, Any] = {"error": {"kind": type(e).__name__, "message": e.message, "status": e.status,
                                               "code": e.code, "hint": e.hint, "retry_after": e.retry_after}}
        else:
            value = {"run": self.value.model_dump(mode="json")}
        return json.dumps(value | {"at": self.at, "estimated_seconds": self.estimated_seconds}, separators=(",", ":"))

    @classmethod
    def load(cls, text: str) -> Answer | None:
        try:
            data = json.loads(text)
            estimate = data.get("estimated_seconds")
            if "run" in data:
                return cls(Run.model_validate(data["run"]), float(data["at"]), estimate)
            e = data["error"]
            kind = getattr(errors, e["kind"], FloraError)
            kind = kind if isinstance(kind, type) and issubclass(kind, FloraError) else FloraError
            return cls(kind(e["message"], status=e["status"], code=e["code"], hint=e["hint"],
                            retry_after=e["retry_after"]), float(data["at"]), estimate)
        except (ValueError, KeyError, TypeError):  # written by another version: ask FLORA instead
            return None


def is_transient(error: FloraError) -> bool:
    """A failure to read a run that says nothing about the run itself (FLORA busy, network, rate limit)."""
    return isinstance(error, errors.FloraConnectionError | errors.RateLimitError | errors.ServerError)


class RunPoll:
    """One run's shared poll in this process: its latest answer and who is waiting for it."""

    def __init__(self, polls: RunPolls, user: str, run_id: str) -> None:
        self.polls, self.user, self.run_id = polls, user, run_id
        self.answer: Answer | None = None
        self.answers = 0  # answers taken so far (for the back-off without an estimate)
        self.estimated_seconds: float | None = None
        self.nudged_at = 0.0  # wall-clock time of the latest nudge seen
        self.hooked: bool | None = None  # FLORA will call back when it settles (None: not looked up yet)
        self.waiters = 0
        self.news = anyio.Event()  # set (and replaced) whenever the answer changes or a nudge arrives
        self._lock = anyio.Lock()
        self._checked_shared = 0.0  # monotonic time the shared store was last read

    @property
    def _name(self) -> str:
        return f"{self.user}:{self.run_id}"

    def interval(self) -> float:
        iv = interval_for(self.estimated_seconds, self.answers)
        if self.hooked:  # the webhook's nudge is the signal; polls only cover a lost delivery
            iv = max(HOOKED_MIN_INTERVAL, float(self.estimated_seconds or 0))
        value = self.answer.value if self.answer else None
        if isinstance(value, FloraError) and value.retry_after:
            iv = max(iv, float(value.retry_after))
        return iv

    def seconds_until_due(self, now: float | None = None) -> float:
        """0 when a waiter should refresh now; inf once the answer is final."""
        now = time.time() if now is None else now
        if self.answer is None or self.nudged_at > self.answer.at:
            return 0.0
        if self.answer.settled:
            return float("inf")
        # Due at the start of the next lease window, the same instant on every process: a poll that
        # was due at an answer's age would let two processes straddle a window edge and both ask.
        interval = self.interval()
        due = (math.floor(self.answer.at / interval) + 1) * interval
        if self.hooked:  # a safety-net poll is a full interval after the answer (a window edge may be near)
            due = self.answer.at + interval
        value = self.answer.value
        if isinstance(value, FloraError) and value.retry_after:
            due = max(due, self.answer.at + float(value.retry_after))
        return max(0.0, due - now)

    def _take(self, answer: Answer) -> bool:
        if answer.estimated_seconds and not self.estimated_seconds:
            self.estimated_seconds = answer.estimated_seconds
        if self.answer is not None and answer.at <= self.answer.at:
            return False
        self.answer = answer
        self.answers += 1
        self._wake()
        return True

    def _wake(self) -> None:
        self.news.set()
        self.news = anyio.Event()

    def nudge(self, at: float | None = None) -> None:
        """Ask FLORA at the next refresh (a webhook said the run changed)."""
        self.nudged_at = max(self.nudged_at, time.time() if at is None else at)
        self._wake()

    async def refresh(self, client: Any) -> Answer:
        """Bring the answer up to date if it is due: from another process's published answer, or by
        asking FLORA under this interval's lease. Only one refresh per run runs in this process."""
        async with self._lock:
            if self.seconds_until_due() == 0:
                try:
                    await self._refresh(client)
                except LedgerUnavailable as exc:  # sharing is an optimisation: with the store down, ask alone
                    logger.warning("polls of %s not shared: %s", self.run_id, exc)
                    await self._ask_flora(client, shared=False)
        assert self.answer is not None
        return self.answer

    async def _refresh(self, client: Any) -> None:
        await self.check_shared(force=True)  # the lease is named after our answer: have the newest first
        if self.seconds_until_due() > 0:
            return  # another process answered for this interval
        store = self.polls.store
        # A lease is named after what is due, which every process agrees on: the nudge, or the answer
        # being replaced (the first answer, before any, in short common windows). Its counter lives long
        # enough that processes arriving moments apart still meet on it.
        if self.answer is None:
            lease, window = f"poll-lease:{self._name}:first", FIRST_WINDOW
        elif self.nudged_at > self.answer.at:
            lease, window = f"poll-lease:{self._name}:nudge:{self.nudged_at!r}", LEASE_WINDOW
        else:
            lease, window = f"poll-lease:{self._name}:after:{self.answer.at!r}", LEASE_WINDOW
        if await store.count(lease, window) == 1:
            await self._ask_flora(client)
            return
        # Another process holds this window's lease and is asking FLORA: take its answer when published.
        lost_at = time.monotonic()
        with anyio.move_on_after(ASK_SECONDS):
            while True:  # the winner marks itself asking just after its lease: give it a moment to show
                await anyio.sleep(SHARED_CHECK / 2)
                await self.check_shared(force=True)
                if self.seconds_until_due() > 0:
                    break
                if time.monotonic() - lost_at > ASK_GRACE and not await store.get(f"poll-asking:{self._name}"):
                    break
        if self.answer is None:  # it went away without an answer; a first answer cannot wait longer
            await self._ask_flora(client)

    async def _ask_flora(self, client: Any, *, shared: bool = True) -> None:
        store, asking = self.polls.store, f"poll-asking:{self._name}"
        if shared:
            await store.put(asking, "1", ASK_SECONDS)  # others wait for this answer while it is on its way
        asked = time.time()
        try:
            try:
                value: Run | FloraError = await client.get_run(self.run_id)
            except FloraError as exc:
                value = exc
            answer = Answer(value, asked, self.estimated_seconds)
            self._take(answer)
            if shared:
                try:
                    await store.put(f"poll:{self._name}", answer.dump(), PUBLISHED_TTL)
                except Exception as exc:  # noqa: BLE001 - sharing is an optimisation: the waiter has its answer
                    logger.warning("could not publish %s's status (%s)", self.run_id, type(exc).__name__)
        finally:
            if shared:
                with anyio.CancelScope(shield=True):
                    try:
                        await store.delete(asking)
                    except LedgerUnavailable:  # it expires on its own (ASK_SECONDS)
                        pass

    async def check_shared(self, *, force: bool = False) -> None:
        """Take another process's newer answer and any nudge from the shared store (at most every
        SHARED_CHECK unless forced)."""
        now = time.monotonic()
        if not force and now - self._checked_shared < SHARED_CHECK:
            return
        self._checked_shared = now
        try:
            await self._take_shared()
        except LedgerUnavailable as exc:  # no news from other processes while the store is down
            logger.debug("shared polls unreadable (%s)", exc)

    async def _take_shared(self) -> None:
        store = self.polls.store
        if self.hooked is None:
            self.hooked = bool(await store.get(f"poll-hooked:{self._name}"))
        published, nudged = await store.get(f"poll:{self._name}"), await store.get(f"poll-nudge:{self._name}")
        if published:
            answer = Answer.load(published)
            if answer is not None:
                self._take(answer)
        if nudged:
            try:
                at = float(nudged)
            except ValueError:
                at = 0.0
            if at > self.nudged_at:
                self.nudge(at)


class RunPolls:
    """This process's RunPolls over one shared store, keyed by (user, run)."""

    def __init__(self, store: SharedValues) -> None:
        self.store = store
        self._polls: dict[tuple[str, str], RunPoll] = {}

    @asynccontextmanager
    async def watch(self, user: str, run_ids: list[str],
                    estimates: dict[str, float | None] | None = None) -> AsyncIterator[list[RunPoll]]:
        """Join the runs' polls for the length of a wait."""
        polls = []
        for run_id in run_ids:
            poll = self._polls.get((user, run_id))
            if poll is None:
                poll = self._polls[(user, run_id)] = RunPoll(self, user, run_id)
            poll.waiters += 1
            estimate = (estimates or {}).get(run_id)
            if estimate and not poll.estimated_seconds:
                poll.estimated_seconds = float(estimate)
            polls.append(poll)
        try:
            yield polls
        finally:
            for poll in polls:
                poll.waiters -= 1
                if poll.waiters == 0 and self._polls.get((user, poll.run_id)) is poll:
                    # A run's progress is shared while someone waits on it: the next call reads FLORA
                    # afresh. A final answer stays published for the other processes' waiters.
                    del self._polls[(user, poll.run_id)]
                    # A run FLORA calls back about keeps its answer: it changes only with a nudge.
                    if not poll.hooked and (poll.answer is None or not poll.answer.settled):
                        with anyio.CancelScope(shield=True):
                            await self._forget(poll)

    async def _forget(self, poll: RunPoll) -> None:
        try:
            await self.store.delete(f"poll:{poll._name}")
        except Exception as exc:  # noqa: BLE001 - it expires on its own
            logger.debug("could not drop %s's published status (%s)", poll.run_id, type(exc).__name__)

    async def expect_webhook(self, user: str, run_id: str, run: Run, estimated_seconds: float | None) -> None:
        """A start passed FLORA a callback_url: its answer seeds the run's status (no read needed), and
        waiters then read FLORA when the webhook nudges them (or, as a safety net, rarely)."""
        name = f"{user}:{run_id}"
        await self.store.put(f"poll-hooked:{name}", "1", PUBLISHED_TTL * 60 * 24)
        await self.store.put(f"poll:{name}", Answer(run, time.time(), estimated_seconds).dump(), PUBLISHED_TTL)

    def nudge(self, user: str, run_id: str) -> None:
        """Wake this process's waiters on a run (a webhook arrived here)."""
        poll = self._polls.get((user, run_id))
        if poll is not None:
            poll.nudge()

    async def publish_nudge(self, user: str, run_id: str) -> bool:
        """Wake every process's waiters on a run: they read FLORA once, under one lease. At most one
        nudge per run per NUDGE_SECONDS counts, so a flood of (forged) deliveries costs few reads."""
        if await self.store.count(f"poll-nudged:{user}:{run_id}", NUDGE_SECONDS) > 1:
            return False
        now = time.time()
        await self.store.put(f"poll-nudge:{user}:{run_id}", repr(now), PUBLISHED_TTL)
        poll = self._polls.get((user, run_id))
        if poll is not None:
            poll.nudge(now)
        return True


async def wait_for_news(polls: list[RunPoll], timeout: float) -> None:
    """Sleep until any poll has news (an answer or a nudge, here or from another process) or `timeout`."""
    if timeout <= 0:
        return
    with anyio.move_on_after(timeout):
        async with anyio.create_task_group() as tg:

            async def on_news(poll: RunPoll) -> None:
                await poll.news.wait()
                tg.cancel_scope.cancel()

            async def on_shared() -> None:  # another process's answers and nudges
                while True:
                    await anyio.sleep(SHARED_CHECK)
                    for poll in polls:
                        await poll.check_shared()

            for poll in polls:
                tg.start_soon(on_news, poll)
            tg.start_soon(on_shared)


_BY_LEDGER: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def run_polls(ledger: Any) -> RunPolls:
    """This process's RunPolls for a ledger (one per ledger object)."""
    polls = _BY_LEDGER.get(ledger)
    if polls is None:
        polls = _BY_LEDGER[ledger] = RunPolls(ledger.shared)
    return polls
