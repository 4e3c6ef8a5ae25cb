"""The ledger on SQLite: embedded, no setup, safe for several processes on one host (WAL mode).

Every change runs as one `BEGIN IMMEDIATE` transaction, which holds SQLite's write lock: two
processes (workers, or one process per tool call) never interleave a read-decide-write.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio

from .book import Book

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (user TEXT NOT NULL, key TEXT NOT NULL, created REAL NOT NULL, data TEXT NOT NULL,
                                 PRIMARY KEY (user, key));
CREATE INDEX IF NOT EXISTS runs_by_user ON runs (user, created);
CREATE TABLE IF NOT EXISTS kv (name TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS calibration (model TEXT PRIMARY KEY, estimated REAL NOT NULL, charged REAL NOT NULL,
                                        n INTEGER NOT NULL);
"""


class SqliteStore:
    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One connection, used from worker threads one at a time (the lock): SQLite's own locking
        # then serialises this process against the others.
        self._db = sqlite3.connect(path, timeout=15.0, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            for attempt in range(20):  # processes opening a new file at once can meet "database is locked"
                try:
                    if path != ":memory:":
                        self._db.execute("PRAGMA journal_mode=WAL")
                        self._db.execute("PRAGMA synchronous=NORMAL")
                    self._db.executescript(_SCHEMA)
                    break
                except sqlite3.OperationalError:
                    if attempt == 19:
                        raise
                    time.sleep(0.05 * (attempt + 1))

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                return fn(self._db)

        if self.path == ":memory:":  # no disk, no other process: nothing to wait for off the event loop
            return locked()
        return await anyio.to_thread.run_sync(locked)

    # --- a user's book -----------------------------------------------------------------------------------
    async def update(self, user: str, change: Callable[[Book], T]) -> T:
        """Load `user`'s book, apply `change`, write back what changed: one atomic transaction."""

        def txn(db: sqlite3.Connection) -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                before = {k: d for k, d in db.execute("SELECT key, data FROM runs WHERE user = ?", (user,))}
                book = {k: json.loads(d) for k, d in before.items()}
                result = change(book)
                for key in before.keys() - book.keys():
                    db.execute("DELETE FROM runs WHERE user = ? AND key = ?", (user, key))
                for key, row in book.items():
                    data = json.dumps(row, separators=(",", ":"), sort_keys=True)
                    if before.get(key) != data:
                        db.execute("INSERT OR REPLACE INTO runs (user, key, created, data) VALUES (?, ?, ?, ?)",
                                   (user, key, row["created"], data))
                db.execute("COMMIT")
                return result
            except BaseException:
                db.execute("ROLLBACK")
                raise

        return await self._run(txn)

    async def read(self, user: str) -> Book:
        def query(db: sqlite3.Connection) -> Book:
            return {k: json.loads(d) for k, d in db.execute("SELECT key, data FROM runs WHERE user = ?", (user,))}

        return await self._run(query)

    # --- small shared values: key checks, rate windows, OAuth records --------------------------------------
    async def put(self, name: str, value: str, ttl: float) -> None:
        await self._run(lambda db: db.execute("INSERT OR REPLACE INTO kv (name, value, expires) VALUES (?, ?, ?)",
                                              (name, value, time.time() + ttl)))

    async def get(self, name: str) -> str | None:
        def query(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT value FROM kv WHERE name = ? AND expires > ?", (name, time.time())).fetchone()
            return row[0] if row else None

        return await self._run(query)

    async def take(self, name: str) -> str | None:
        """Get and delete at once: a one-time value (an OAuth code) is taken by exactly one caller."""

        def txn(db: sqlite3.Connection) -> str | None:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT value FROM kv WHERE name = ? AND expires > ?", (name, time.time())).fetchone()
                db.execute("DELETE FROM kv WHERE name = ?", (name,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return row[0] if row else None

        return await self._run(txn)

    async def delete(self, name: str) -> None:
        await self._run(lambda db: db.execute("DELETE FROM kv WHERE name = ?", (name,)))

    async def count(self, name: str, window_seconds: float) -> int:
        """Count one event in the current fixed window of `name`; returns the window's count so far.
        One UPSERT statement, atomic on its own (it runs on every hosted request)."""
        now = time.time()
        slot = f"{name}@{int(now // window_seconds)}"

        def upsert(db: sqlite3.Connection) -> int:
            count = int(db.execute(
                "INSERT INTO kv (name, value, expires) VALUES (?, '1', ?) ON CONFLICT(name) DO UPDATE "
                "SET value = CAST(kv.value AS INTEGER) + 1 RETURNING value", (slot, now + window_seconds)).fetchone()[0])
            if count == 1:  # now and then: forget expired values
                db.execute("DELETE FROM kv WHERE expires <= ?", (now,))
            return count

        return await self._run(upsert)

    # --- estimate calibration -------------------------------------------------------------------------
    async def add_calibration(self, model: str, estimated_usd: float, charged_usd: float) -> None:
        await self._run(lambda db: db.execute(
            "INSERT INTO calibration (model, estimated, charged, n) VALUES (?, ?, ?, 1) ON CONFLICT(model) DO UPDATE "
            "SET estimated = estimated + excluded.estimated, charged = charged + excluded.charged, n = n + 1",
            (model, estimated_usd, charged_usd)))

    async def calibration(self, model: str) -> tuple[float, float, int]:
        def query(db: sqlite3.Connection) -> tuple[float, float, int]:
            row = db.execute("SELECT estimated, charged, n FROM calibration WHERE model = ?", (model,)).fetchone()
            return (row[0], row[1], row[2]) if row else (0.0, 0.0, 0)

        return await self._run(query)

    async def aclose(self) -> None:
        with self._lock:
            self._db.close()
