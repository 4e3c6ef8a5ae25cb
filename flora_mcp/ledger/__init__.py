"""The ledger: the server's durable, shared memory of every paid start.

Before a paid POST the intent is written (who, which tool, the idempotency key, a fingerprint of the
request, the money reserved); after it, the run ID or what went wrong. Processes, workers and
replicas that share a ledger share that memory, so a retried call never pays twice, a lost answer
is never a lost run, and a budget holds across all of them.

    ledger = open_ledger("sqlite:///path/ledger.sqlite3")   # or redis://host:6379/0, or memory:
    decisions = await ledger.begin(user, [intent], budget_usd=5.0, window_seconds=86400)

Stores: SQLite (default; a file in the user's state directory) and Redis. API keys and tokens are
never stored: users are named by a hash of (FLORA base URL, key).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from typing import Any, Protocol

import anyio

from .._ids import user_id
from . import book
from .book import Book, Decision, Intent, OverBudget, Row

__all__ = ["Decision", "Intent", "Ledger", "OverBudget", "Row", "default_state_url", "open_ledger", "user_id"]

WAIT_FOR_START_SECONDS = 30.0  # how long an identical concurrent call waits for the first one's start


class Store(Protocol):
    async def update(self, user: str, change: Any) -> Any: ...
    async def read(self, user: str) -> Book: ...
    async def put(self, name: str, value: str, ttl: float) -> None: ...
    async def get(self, name: str) -> str | None: ...
    async def take(self, name: str) -> str | None: ...
    async def delete(self, name: str) -> None: ...
    async def count(self, name: str, window_seconds: float) -> int: ...
    async def add_calibration(self, model: str, estimated_usd: float, charged_usd: float) -> None: ...
    async def calibration(self, model: str) -> tuple[float, float, int]: ...
    async def aclose(self) -> None: ...


def request_fingerprint(tool: str, body: dict[str, Any]) -> str:
    """The same tool with the same normalised request body: the same fingerprint."""
    return hashlib.sha256(json.dumps([tool, body], sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def default_state_url() -> str:
    """A SQLite file in the platform's user state directory (platformdirs knows macOS, Windows, Linux)."""
    import platformdirs

    return "sqlite:///" + os.path.join(platformdirs.user_state_dir("flora-mcp", appauthor=False), "ledger.sqlite3")


def open_ledger(url: str) -> Ledger:
    """`sqlite:///abs/path`, a plain path, `memory:` (this process only) or `redis://…`/`rediss://…`."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisStore

        return Ledger(RedisStore(url))
    from .sqlite import SqliteStore

    if url in ("memory:", "sqlite://:memory:", ":memory:"):
        return Ledger(SqliteStore(":memory:"))
    path = url.removeprefix("sqlite://") if url.startswith("sqlite://") else url
    return Ledger(SqliteStore(os.path.expanduser(path)))


class Ledger:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.owner = uuid.uuid4().hex[:12]  # this process: marks the starts it is making

    def __repr__(self) -> str:
        return f"Ledger({self.store!r})"

    # --- before the POST ---------------------------------------------------------------------------------
    async def begin(self, user: str, intents: list[Intent], *, budget_usd: float | None,
                    window_seconds: float) -> list[Decision]:
        """Record intents and reserve their money at once, or raise OverBudget with nothing recorded."""

        def change(rows: Book) -> list[Decision]:
            now = time.time()
            book.prune(rows, now, window_seconds)
            return book.begin(rows, intents, now=now, owner=self.owner, budget_usd=budget_usd,
                              window_seconds=window_seconds)

        return await self.store.update(user, change)

    async def preview(self, user: str, intents: list[Intent]) -> list[Decision]:
        """What begin would decide (nothing written): the starts that are new, and so need guarding."""
        return book.preview(await self.store.read(user), intents, now=time.time())

    async def wait_for_start(self, user: str, key: str) -> Row | None:
        """Wait while another call is starting the same request; its row once it has an outcome."""
        with anyio.move_on_after(WAIT_FOR_START_SECONDS):
            while True:
                row = (await self.store.read(user)).get(key)
                if row is None or row["status"] != "starting":
                    return row
                await anyio.sleep(0.2)
        return (await self.store.read(user)).get(key)

    # --- after the POST ----------------------------------------------------------------------------------
    async def started(self, user: str, key: str, run_id: str, **details: Any) -> None:
        await self._edit(user, key, status="pending", run_id=run_id, **details)

    async def outcome_unknown(self, user: str, key: str, reason: str) -> None:
        await self._edit(user, key, status="unknown", note=reason)

    async def accepted_without_id(self, user: str, key: str) -> None:
        await self._edit(user, key, status="accepted")

    async def release(self, user: str, key: str) -> None:
        """FLORA refused the start (nothing was charged): forget the intent and free its reservation."""

        def change(rows: Book) -> None:
            row = rows.get(key)
            if row is not None and not row.get("run_id"):
                del rows[key]

        await self.store.update(user, change)

    async def _edit(self, user: str, key: str, **values: Any) -> None:
        def change(rows: Book) -> None:
            row = rows.get(key)
            if row is not None and row["status"] not in book.SETTLED:
                row.update(values, updated=time.time())

        await self.store.update(user, change)

    # --- following runs ----------------------------------------------------------------------------------
    async def observe(self, user: str, run_id: str, status: str, charged_usd: float | None) -> Row | None:
        """Record FLORA's latest status for a run; the first time it settles, learn from its charge."""

        def change(rows: Book) -> Row | None:
            row = book.find_run(rows, run_id)
            if row is None or row["status"] == status and charged_usd in (None, row.get("charged_usd")):
                return None
            return dict(row) if book.settle(row, status, charged_usd, time.time()) else None

        if status not in book.SETTLED and status not in ("pending", "running"):
            return None
        settled = await self.store.update(user, change)
        if settled and settled.get("model") and settled.get("estimated_usd") and settled["status"] == "completed":
            raw = settled["estimated_usd"] / (settled.get("calibration") or 1.0)
            await self.store.add_calibration(settled["model"], raw, settled.get("charged_usd") or 0.0)
        return settled

    async def run(self, user: str, run_id: str) -> Row | None:
        return book.find_run(await self.store.read(user), run_id)

    async def rows(self, user: str) -> list[Row]:
        """This user's rows, newest first."""
        return sorted((await self.store.read(user)).values(), key=lambda r: r["created"], reverse=True)

    async def totals(self, user: str, window_seconds: float) -> tuple[float, float]:
        return book.window_totals(await self.store.read(user), time.time(), window_seconds)

    async def calibration(self, model: str) -> tuple[float, int]:
        """(charged ÷ estimated, number of settled runs) learned for a model; (1.0, 0) before any."""
        estimated, charged, n = await self.store.calibration(model)
        if n == 0 or estimated <= 0:
            return 1.0, 0
        return charged / estimated, n

    async def aclose(self) -> None:
        await self.store.aclose()
