"""The ledger on SQLite: embedded, no setup, safe for several processes on one host (WAL mode).

Each decision is one `BEGIN IMMEDIATE` transaction (SQLite's write lock: two processes never interleave
a read-decide-write) over the few rows it needs, found by index. The lock is waited for at most
BUSY_SECONDS; then the decision is refused with LedgerUnavailable, before any paid POST.

The file must stay the file: it is checked (device and inode) before each transaction, so a ledger
deleted or replaced while serving is refused, not silently started afresh.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio

from . import sql
from .book import Change, Fetched, Insert, Reads, Row
from .errors import LedgerUnavailable

T = TypeVar("T")
BUSY_SECONDS = 3.0  # longest a decision waits for another process's write lock


class SqliteStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._identity: tuple[int, int] | None = None
        try:
            if path != ":memory:":
                _create_private(Path(path))
            self._db = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False)
            for attempt in range(20):  # processes opening a new file at once can meet "database is locked"
                try:
                    self._prepare()
                    break
                except sqlite3.OperationalError as exc:
                    if attempt == 19 or "locked" not in str(exc):
                        raise
                    time.sleep(0.05 * (attempt + 1))
            if path != ":memory:":
                info = os.stat(path)
                self._identity = (info.st_dev, info.st_ino)
        except (sqlite3.Error, OSError) as exc:
            raise self._unavailable(exc, opening=True) from None

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    def _prepare(self) -> None:
        db = self._db
        if self.path != ":memory:":
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: a commit survives the process being killed
        db.execute("BEGIN IMMEDIATE")  # also proves the file is writable
        try:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = 0
            if "schema_version" in tables:
                row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
                version = row[0] or 0
            if version > sql.SCHEMA_VERSION:
                raise LedgerUnavailable(f"the ledger {self.path} was written by a newer flora-mcp (schema "
                                        f"{version}; this one knows {sql.SCHEMA_VERSION})",
                                        hint="Upgrade flora-mcp, or point FLORA_STATE_URL at another file")
            if version < sql.SCHEMA_VERSION:
                for statement in sql.schema(sql.SQLITE):
                    db.execute(statement)
                if "runs" in tables:  # the release before schema versions: one JSON document per run
                    _upgrade_from_documents(db)
                db.execute("DELETE FROM schema_version")
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (sql.SCHEMA_VERSION,))
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise

    # --- running statements --------------------------------------------------------------------------
    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                self._check_identity()
                try:
                    return fn(self._db)
                except sqlite3.Error as exc:
                    raise self._unavailable(exc) from None

        if self.path == ":memory:":  # no disk, no other process: nothing to wait for off the event loop
            return locked()
        return await anyio.to_thread.run_sync(locked)

    def _check_identity(self) -> None:
        if self._identity is None:
            return
        try:
            info = os.stat(self.path)
            same = (info.st_dev, info.st_ino) == self._identity
        except OSError:
            same = False
        if not same:
            raise LedgerUnavailable(
                f"the ledger file {self.path} was deleted or replaced while this server was running",
                hint="Nothing was written to it; restore the file, or restart the server to use the one now at "
                     "that path (runs recorded only in the old file are then not known)")

    def _unavailable(self, exc: BaseException, *, opening: bool = False) -> LedgerUnavailable:
        if isinstance(exc, LedgerUnavailable):
            return exc
        text = str(exc).lower()
        if "locked" in text or "busy" in text:
            what = f"is locked by another process (waited {BUSY_SECONDS:g} s)"
            hint = "Try again in a moment; if it stays locked, find the process holding it (e.g. fuser on the file)"
        elif "readonly" in text or "read-only" in text or isinstance(exc, PermissionError):
            what, hint = "cannot be written (read-only)", "Make the file and its directory writable by this user"
        elif "full" in text or isinstance(exc, OSError) and exc.errno == 28:
            what, hint = "cannot be written: the disk is full", "Free space on its disk"
        elif "malformed" in text or "not a database" in text or "corrupt" in text:
            what = "is corrupt"
            hint = "Move it aside (and restore a backup) or point FLORA_STATE_URL at a new file"
        else:
            what = f"cannot be used ({exc})"
            hint = "Check the file, its directory and FLORA_STATE_URL"
        return LedgerUnavailable(f"the ledger file {self.path} {what}", hint=hint)

    # --- the run book --------------------------------------------------------------------------------
    def _fetch(self, db: sqlite3.Connection, user: str, reads: Reads, now: float) -> Fetched:
        plan = sql.fetch_plan(sql.SQLITE, user, reads, now)
        return sql.assemble(plan, [db.execute(statement, params).fetchone() for _, statement, params, _ in plan])

    async def decide(self, user: str, reads: Reads, now: float,
                     rule: Callable[[Fetched], tuple[T, list[Change]]]) -> T:
        def txn(db: sqlite3.Connection) -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result, changes = rule(self._fetch(db, user, reads, now))
                for statement, params in sql.writes(sql.SQLITE, user, changes):
                    db.execute(statement, params)
                db.execute("COMMIT")
                return result
            except BaseException:
                _rollback(db)
                raise

        return await self._run(txn)

    async def fetch(self, user: str, reads: Reads, now: float) -> Fetched:
        return await self._run(lambda db: self._fetch(db, user, reads, now))

    async def page(self, user: str, query: sql.Query) -> list[Row]:
        statement, params = sql.page(sql.SQLITE, user, query)
        return await self._run(lambda db: [sql.decode(r) for r in db.execute(statement, params)])

    async def summary(self, user: str, query: sql.Query, since: float) -> tuple[int, float, float]:
        statement, params = sql.summary(sql.SQLITE, user, query, since)
        return await self._run(lambda db: tuple(db.execute(statement, params).fetchone()))  # type: ignore[return-value]

    async def following(self, user: str, limit: int) -> list[Row]:
        return await self._run(lambda db: [sql.decode(r) for r in db.execute(sql.following(sql.SQLITE), (user, limit))])

    async def prune(self, user: str, before: float, limit: int) -> int:
        rows, hours = sql.prune(sql.SQLITE)

        def run(db: sqlite3.Connection) -> int:
            db.execute(hours, (user, sql.hour_of(before)))
            return db.execute(rows, (user, user, before, limit)).rowcount

        return await self._run(run)

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

        def query(db: sqlite3.Connection) -> str | None:
            row = db.execute("DELETE FROM kv WHERE name = ? RETURNING value, expires", (name,)).fetchone()
            return row[0] if row and row[1] > time.time() else None

        return await self._run(query)

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
            if count == 1:  # now and then: forget a bounded batch of expired values
                db.execute("DELETE FROM kv WHERE name IN (SELECT name FROM kv WHERE expires <= ? LIMIT 1000)", (now,))
            return count

        return await self._run(upsert)

    # --- estimate calibration -------------------------------------------------------------------------
    async def calibration_sums(self, user: str, model: str) -> tuple[tuple[float, float, int],
                                                                     tuple[float, float, int]]:
        def query(db: sqlite3.Connection) -> tuple[tuple[float, float, int], tuple[float, float, int]]:
            found = {m: (e, c, n) for m, e, c, n in db.execute(sql.calibrations(sql.SQLITE), (user, model, "*"))}
            return found.get(model, (0.0, 0.0, 0)), found.get("*", (0.0, 0.0, 0))

        return await self._run(query)

    async def aclose(self) -> None:
        with self._lock:
            self._db.close()


def _rollback(db: sqlite3.Connection) -> None:
    """Undo a failed transaction, unless SQLite already did (a full disk, I/O errors): the first error is
    the one to report."""
    if db.in_transaction:
        db.execute("ROLLBACK")


def _create_private(path: Path) -> None:
    """The ledger's directory 0700 and file 0600 when this creates them, whatever the umask: it holds
    which accounts spent what."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, stat.S_IRWXU)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)
    os.chmod(path, 0o600)


def _upgrade_from_documents(db: sqlite3.Connection) -> None:
    """Schema 0 -> 1: each run's JSON document becomes a keyed row; the global calibration becomes each
    account's own, relearned from its settled runs. Runs in the opening transaction: all or nothing."""
    learned: dict[tuple[str, str], list[float]] = {}
    for user, data in db.execute("SELECT user, data FROM runs").fetchall():
        row = json.loads(data)
        row.setdefault("run_id", None)
        row.setdefault("updated", row["created"])
        for statement, params in sql.writes(sql.SQLITE, user, [Insert(row)]):
            db.execute(statement, params)
        if row["status"] == "completed" and row.get("model") and row.get("estimated_usd"):
            raw = row["estimated_usd"] / (row.get("calibration") or 1.0)
            for model in (row["model"], "*"):
                sums = learned.setdefault((user, model), [0.0, 0.0, 0])
                sums[0] += raw
                sums[1] += row.get("charged_usd") or 0.0
                sums[2] += 1
    for (user, model), (estimated, charged, n) in learned.items():
        db.execute("INSERT INTO calibrations (user_id, model, estimated, charged, n) VALUES (?, ?, ?, ?, ?)",
                   (user, model, estimated, charged, n))
    db.execute("DROP TABLE runs")
    db.execute("DROP TABLE IF EXISTS calibration")
