"""The ledger: the server's durable, shared memory of every paid start.

Before a paid POST the intent is written (who, which tool, the idempotency key, a fingerprint of the
request, the money reserved); after it, the run ID or what went wrong. Processes, workers and
replicas that share a ledger share that memory, so a retried call never pays twice, a lost answer
is never a lost run, and a budget holds across all of them.

    ledger = open_ledger("sqlite:///path/ledger.sqlite3")   # or postgresql://host/db, or memory:
    decisions = await ledger.begin(user, [intent], budget_usd=5.0, window_seconds=86400)

Stores: SQLite (default; a file in the user's state directory) and PostgreSQL (replicas). Each holds
three things behind its own small interface: the run book (`RunBook`), short-lived shared values
(`SharedValues`: key checks, rate windows, OAuth records) and estimate calibration (`Calibrations`).
Every decision is one short transaction over the few rows it needs (see book.py, where the rules
live). API keys and tokens are never stored: users are named by a hash of (FLORA base URL, key).
See docs/ledger.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import anyio

from .._ids import user_id
from . import book
from .book import Calibration, Change, Decision, Fetched, Intent, OverBudget, Reads, Row
from .errors import LedgerUnavailable
from .sql import Query

__all__ = ["Calibration", "Decision", "Intent", "Ledger", "LedgerUnavailable", "OverBudget", "Query", "Row",
           "RunsPage", "SharedValues", "default_state_url", "open_ledger", "user_id"]

T = TypeVar("T")
logger = logging.getLogger("flora_mcp.ledger")

WAIT_FOR_START_SECONDS = 30.0  # how long an identical concurrent call waits for the first one's start
PRUNE_EVERY_SECONDS = 3600.0  # per user and process: drop rows past retention at most this often
PRUNE_BATCH = 500  # ...and at most this many at a time
KEEP_TRYING_SECONDS = 600.0  # a write after a paid POST is retried in the background this long


class RunBook(Protocol):
    """Paid starts, one row each. `decide` runs one decision atomically under the user's lock: the store
    fetches what `reads` names, the rule answers (result, changes), the store writes the changes."""

    async def decide(self, user: str, reads: Reads, now: float,
                     rule: Callable[[Fetched], tuple[T, list[Change]]]) -> T: ...
    async def fetch(self, user: str, reads: Reads, now: float) -> Fetched: ...  # a look, without the lock
    async def page(self, user: str, query: Query) -> list[Row]: ...
    async def summary(self, user: str, query: Query, since: float) -> tuple[int, float, float]: ...
    async def following(self, user: str, limit: int) -> list[Row]: ...
    async def prune(self, user: str, before: float, limit: int) -> int: ...


class SharedValues(Protocol):
    """Small values with a lifetime, and counters in fixed windows, shared by every process on the store."""

    async def put(self, name: str, value: str, ttl: float) -> None: ...
    async def get(self, name: str) -> str | None: ...
    async def take(self, name: str) -> str | None: ...  # get and delete at once: exactly one caller gets it
    async def delete(self, name: str) -> None: ...
    async def count(self, name: str, window_seconds: float) -> int: ...


class Calibrations(Protocol):
    """(estimated, charged, runs) sums learned from one account's settled runs: for a model, and for all."""

    async def calibration_sums(self, user: str, model: str) -> tuple[tuple[float, float, int],
                                                                     tuple[float, float, int]]: ...


class Store(RunBook, SharedValues, Calibrations, Protocol):
    async def aclose(self) -> None: ...


def request_fingerprint(tool: str, body: dict[str, Any]) -> str:
    """The same tool with the same normalised request body: the same fingerprint."""
    return hashlib.sha256(json.dumps([tool, body], sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def default_state_url() -> str:
    """A SQLite file in the platform's user state directory (platformdirs knows macOS, Windows, Linux)."""
    import platformdirs

    return "sqlite:///" + os.path.join(platformdirs.user_state_dir("flora-mcp", appauthor=False), "ledger.sqlite3")


MEMORY_URLS = ("memory:", "sqlite://:memory:", ":memory:")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def state_url_problem(url: str) -> str | None:
    """Why FLORA_STATE_URL cannot name a ledger, or None. Checked when settings load."""
    if url in MEMORY_URLS or url.startswith(("sqlite://", *POSTGRES_SCHEMES)):
        return None
    scheme = url.split("://", 1)[0] + "://" if "://" in url else None
    if scheme in ("redis://", "rediss://", "unix://"):
        return ("Redis is no longer a ledger store (it can lose acknowledged writes, and a lost intent is a double "
                "charge): use postgresql://user@host/db for replicas, or sqlite:///path; see docs/ledger.md")
    if scheme is not None:
        return f"unknown scheme {scheme}: use sqlite:///path, postgresql://user@host/db or memory:; see docs/ledger.md"
    return None  # a plain path: a SQLite file


def open_ledger(url: str) -> Ledger:
    """`sqlite:///abs/path`, a plain path, `memory:` (this process only) or `postgresql://…`.

    Raises LedgerUnavailable (one line: which file or server, what is wrong, what to do) when a SQLite
    file cannot be opened, and ValueError for a URL no store understands."""
    problem = state_url_problem(url)
    if problem:
        raise ValueError(problem)
    if url.startswith(POSTGRES_SCHEMES):
        from .postgres import PostgresStore

        return Ledger(PostgresStore(url))
    from .sqlite import SqliteStore

    if url in MEMORY_URLS:
        return Ledger(SqliteStore(":memory:"))
    path = url.removeprefix("sqlite://") if url.startswith("sqlite://") else url
    return Ledger(SqliteStore(os.path.expanduser(path)))


@dataclass(frozen=True)
class RunsPage:
    """A page of a user's starts (newest first), how many match in all, and the budget window's sums
    over the ones that match."""

    rows: list[Row]
    matching: int
    spent_usd: float
    held_usd: float


class Ledger:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.runs: RunBook = store
        self.shared: SharedValues = store
        self.calibrations: Calibrations = store
        self.owner = uuid.uuid4().hex[:12]  # this process: marks the starts it is making
        self._pruned: dict[str, float] = {}  # user -> when this process last pruned their rows
        self._retrying: set[asyncio.Task] = set()

    def __repr__(self) -> str:
        return f"Ledger({self._store!r})"

    # --- before the POST ---------------------------------------------------------------------------------
    async def begin(self, user: str, intents: list[Intent], *, budget_usd: float | None,
                    window_seconds: float) -> list[Decision]:
        """Record intents and reserve their money at once, or raise OverBudget with nothing recorded."""
        now = time.time()
        reads = book.reads_for_begin(intents, now, window_seconds, budget_usd)
        decisions = await self.runs.decide(user, reads, now, lambda fetched: book.begin(
            fetched, intents, now=now, owner=self.owner, budget_usd=budget_usd))
        await self._prune_now_and_then(user, now)
        return decisions

    async def dry_run(self, user: str, intents: list[Intent]) -> list[Decision]:
        """What begin would decide (nothing written): the starts that are new, and so need guarding."""
        now = time.time()
        fetched = await self.runs.fetch(user, book.reads_for_begin(intents, now, 0, None), now)
        return book.begin(fetched, intents, now=now, owner="dry_run", budget_usd=None)[0]

    async def wait_for_start(self, user: str, key: str) -> Row | None:
        """Wait while another call is starting the same request; its row once it has an outcome."""
        with anyio.move_on_after(WAIT_FOR_START_SECONDS):
            while True:
                row = await self._row(user, key)
                if row is None or row["status"] != "starting":
                    return row
                await anyio.sleep(0.2)
        return await self._row(user, key)

    async def _row(self, user: str, key: str) -> Row | None:
        return (await self.runs.fetch(user, Reads(keys=(key,)), time.time())).rows.get(key)

    # --- after the POST ----------------------------------------------------------------------------------
    async def started(self, user: str, key: str, run_id: str, **details: Any) -> None:
        await self._edit(user, key, status="pending", run_id=run_id, **details)

    async def outcome_unknown(self, user: str, key: str, reason: str) -> None:
        await self._edit(user, key, status="unknown", note=reason)

    async def accepted_without_id(self, user: str, key: str) -> None:
        await self._edit(user, key, status="accepted")

    async def release(self, user: str, key: str) -> None:
        """FLORA refused the start (nothing was charged): forget the intent and free its reservation."""
        await self.runs.decide(user, Reads(keys=(key,)), time.time(),
                               lambda fetched: (None, book.release(fetched.rows.get(key))))

    async def _edit(self, user: str, key: str, **values: Any) -> None:
        now = time.time()
        await self.runs.decide(user, Reads(keys=(key,)), now,
                               lambda fetched: (None, book.edit(fetched.rows.get(key), now, **values)))

    def keep_trying(self, what: str, write: Callable[[], Awaitable[None]]) -> None:
        """A write after a paid POST that failed: retry it in the background (the answer does not wait),
        with backoff, for KEEP_TRYING_SECONDS; say so loudly on stderr each time, naming `what`."""

        async def retry() -> None:
            deadline, delay = time.monotonic() + KEEP_TRYING_SECONDS, 1.0
            while time.monotonic() < deadline:
                await asyncio.sleep(delay)
                try:
                    await write()
                    logger.warning("ledger: recorded %s at last", what)
                    return
                except Exception as exc:  # noqa: BLE001 - any store failure: keep trying, loudly
                    logger.error("ledger: still cannot record %s (%s); retrying", what, _why(exc))
                    delay = min(delay * 2, 60.0)
            logger.error("ledger: GAVE UP recording %s after %d s; it is not in list_runs and the budget does not "
                         "count it", what, KEEP_TRYING_SECONDS)

        task = asyncio.get_running_loop().create_task(retry())
        self._retrying.add(task)
        task.add_done_callback(self._retrying.discard)

    # --- following runs ----------------------------------------------------------------------------------
    async def observe(self, user: str, run_id: str, status: str, charged_usd: float | None) -> Row | None:
        """Record FLORA's latest status for a run; the first time it settles, learn from its charge.
        Returns the row when this call settled it. Learning nothing writes nothing."""
        now = time.time()
        reads = Reads(run_id=run_id)
        looked = await self.runs.fetch(user, reads, now)
        if not book.observe(looked.run, status, charged_usd, now)[1]:
            return None
        return await self.runs.decide(user, reads, now,
                                      lambda fetched: book.observe(fetched.run, status, charged_usd, now))

    async def run(self, user: str, run_id: str) -> Row | None:
        return (await self.runs.fetch(user, Reads(run_id=run_id), time.time())).run

    async def page(self, user: str, query: Query, window_seconds: float) -> RunsPage:
        """A page for list_runs: filtered and ordered in the store; sums over what the filter matches."""
        rows = await self.runs.page(user, query)
        matching, spent, held = await self.runs.summary(user, query, time.time() - window_seconds)
        return RunsPage(rows, matching, round(spent, 6), round(held, 6))

    async def following(self, user: str, limit: int = 20) -> list[Row]:
        """The newest started runs FLORA still reports as pending or running."""
        return await self.runs.following(user, limit)

    async def totals(self, user: str, window_seconds: float) -> tuple[float, float]:
        """(settled charges, open reservations) in the budget window, for the whole account."""
        _, spent, held = await self.runs.summary(user, Query(), time.time() - window_seconds)
        return round(spent, 6), round(held, 6)

    async def calibration(self, user: str, model: str) -> Calibration:
        """charged ÷ estimated learned from this account's settled runs of `model` (else of all its models)."""
        return book.calibration(*await self.calibrations.calibration_sums(user, model))

    async def _prune_now_and_then(self, user: str, now: float) -> None:
        """Drop a bounded batch of rows past retention, at most once an hour per user and process."""
        if now - self._pruned.get(user, 0.0) < PRUNE_EVERY_SECONDS:
            return
        if len(self._pruned) > 10_000:
            self._pruned.clear()
        self._pruned[user] = now
        try:
            await self.runs.prune(user, now - book.RETENTION_SECONDS, PRUNE_BATCH)
        except LedgerUnavailable as exc:  # housekeeping: the start itself is recorded
            logger.warning("ledger: pruning old rows failed (%s)", exc)

    async def aclose(self) -> None:
        if self._retrying:  # give background writes a last, short chance
            with anyio.move_on_after(2):
                await asyncio.gather(*self._retrying, return_exceptions=True)
            for task in self._retrying:
                task.cancel()
        await self._store.aclose()


def _why(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, LedgerUnavailable) else type(exc).__name__
