"""The ledger on PostgreSQL, for replicas (FLORA_STATE_URL=postgresql://user@host/db).

The store operators already run for money: ACID, durable commits, unique constraints, row locks. Each
decision is one transaction that first locks the user's row in `ledger_users` (`SELECT … FOR UPDATE`),
so one user's decisions run one at a time across every process and host while other users' run in
parallel; then it reads the few rows it needs by index and writes what the rule decided.

Group commit: a durable commit waits for the disk (fsync), and the account's lock is held until it is
durable, so one account's begins could pass at most one per fsync. Begins of one account waiting in this
process are therefore decided together in one transaction: each still reads (after the writes of those
before it), decides, and is refused or written in turn, so every budget check is exact; they then share
one commit. None gets its answer before that commit is durable. A write-ahead intent must be durable before
its paid POST, so `synchronous_commit` is never relaxed here.

psycopg 3 (async) with its connection pool: install with `pip install 'flora-mcp[postgres]'`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

from . import sql
from .book import Change, Fetched, Reads, Row
from .errors import LedgerUnavailable

T = TypeVar("T")
D = sql.POSTGRES
CONNECT_SECONDS = 5.0  # longest a decision waits for a connection before it is refused
STATEMENT_MS = 5000  # longest one statement (or a wait for a user's lock) may take
POOL_SIZE = 10
GROUP_MOST = 64  # begins of one account decided in one transaction at most (bounds how long its lock is held)


@dataclass
class _Waiting:
    """A begin waiting for its account's next group commit."""

    reads: Reads
    now: float
    rule: Callable[[Fetched], tuple[Any, list[Change]]]
    answer: asyncio.Future


class PostgresStore:
    def __init__(self, url: str) -> None:
        try:
            from psycopg.conninfo import conninfo_to_dict
            from psycopg_pool import AsyncConnectionPool
        except ImportError:
            raise LedgerUnavailable("FLORA_STATE_URL names PostgreSQL but its driver is not installed",
                                    hint="Install it: pip install 'flora-mcp[postgres]'") from None
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)  # each failed connect: our one clear error instead
        info = conninfo_to_dict(url)
        self.where = f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}/{info.get('dbname') or ''}"
        self._pool = AsyncConnectionPool(
            url, min_size=1, max_size=POOL_SIZE, open=False, timeout=CONNECT_SECONDS,
            check=AsyncConnectionPool.check_connection,  # a server restarted since: a fresh connection, no error
            kwargs={"autocommit": True, "options": f"-c statement_timeout={STATEMENT_MS} "
                                                   f"-c lock_timeout={STATEMENT_MS}"})
        self._opened = False
        self._opening = anyio.Lock()
        self._waiting: dict[str, list[_Waiting]] = {}  # user -> begins waiting for the next group commit
        self._committing: dict[str, asyncio.Task] = {}  # user -> the task running their group commits

    def __repr__(self) -> str:  # the URL may hold a password
        return f"PostgresStore({self.where!r})"

    def _unavailable(self, exc: BaseException) -> LedgerUnavailable:
        if isinstance(exc, LedgerUnavailable):
            return exc
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return LedgerUnavailable(f"the ledger database {self.where} cannot be used ({detail[:200]})",
                                 hint="Check that PostgreSQL is running and reachable, and FLORA_STATE_URL; "
                                      "try again in a moment")

    async def _open(self) -> None:
        async with self._opening:
            if self._opened:
                return
            await self._pool.open(wait=True, timeout=CONNECT_SECONDS)
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(4201)")  # one process creates or upgrades
                for statement in sql.schema(D):
                    await conn.execute(statement)
                version = (await (await conn.execute("SELECT MAX(version) FROM schema_version")).fetchone())[0] or 0
                if version > sql.SCHEMA_VERSION:
                    raise LedgerUnavailable(f"the ledger database {self.where} was written by a newer flora-mcp "
                                            f"(schema {version})", hint="Upgrade flora-mcp")
                if version < sql.SCHEMA_VERSION:
                    await conn.execute("DELETE FROM schema_version")
                    await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (sql.SCHEMA_VERSION,))
            self._opened = True

    async def _with(self, fn: Callable[[Any], Any]) -> Any:
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            if not self._opened:
                await self._open()
            async with self._pool.connection() as conn:
                return await fn(conn)
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            raise self._unavailable(exc) from None

    @staticmethod
    async def _fetch(conn: Any, user: str, reads: Reads, now: float, lock_rows: bool = False) -> Fetched:
        """Every read a decision needs, sent together (pipeline mode: one round trip), then assembled."""
        plan = sql.fetch_plan(D, user, reads, now, lock_rows)
        cursors = [await conn.execute(statement, params) for _, statement, params, _ in plan]
        return sql.assemble(plan, [await cursor.fetchone() for cursor in cursors])

    # --- the run book --------------------------------------------------------------------------------
    async def decide(self, user: str, reads: Reads, now: float,
                     rule: Callable[[Fetched], tuple[T, list[Change]]]) -> T:
        """One transaction in two round trips: lock and read (pipelined), decide, write and commit (pipelined).

        A decision that may add rows or weigh the budget (begin) locks the account's row, so one account's
        begins run one at a time on every replica (and those waiting in this process share one commit);
        every decision locks the rows it reads (FOR UPDATE), so the writes after a POST and status reads
        wait only for the same start, not the whole account."""
        if reads.whole_account:
            return await self._decide_in_group(user, reads, now, rule)

        async def txn(conn: Any) -> T:
            async with conn.pipeline(), conn.transaction():
                result, changes = rule(await self._fetch(conn, user, reads, now, lock_rows=True))
                for statement, params in sql.writes(D, user, changes):
                    await conn.execute(statement, params)
                return result

        return await self._with(txn)

    async def _decide_in_group(self, user: str, reads: Reads, now: float,
                               rule: Callable[[Fetched], tuple[T, list[Change]]]) -> T:
        waiting = _Waiting(reads, now, rule, asyncio.get_running_loop().create_future())
        waiting.answer.add_done_callback(_retrieved)
        self._waiting.setdefault(user, []).append(waiting)
        if user not in self._committing:
            self._committing[user] = asyncio.get_running_loop().create_task(self._group_commits(user))
        try:
            # Shielded: a caller that gives up does not cancel the others' commit.
            return await asyncio.shield(waiting.answer)
        except asyncio.CancelledError:
            queue = self._waiting.get(user)
            if queue and waiting in queue:  # not yet taken into a transaction: never decided
                queue.remove(waiting)
            raise

    async def _group_commits(self, user: str) -> None:
        """While begins of `user` wait: take up to GROUP_MOST of them, decide them in one transaction."""
        try:
            while queue := self._waiting.get(user):
                group = queue[:GROUP_MOST]
                del queue[:GROUP_MOST]
                if not queue:
                    del self._waiting[user]
                try:
                    answers = await self._with(lambda conn, group=group: self._decide_group(conn, user, group))
                except BaseException as exc:  # nothing was committed: each hears why
                    for waiting in group:
                        if not waiting.answer.done():
                            waiting.answer.set_exception(exc if isinstance(exc, Exception)
                                                         else self._unavailable(exc))
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for waiting, (result, refused) in zip(group, answers, strict=True):  # after the commit
                    if waiting.answer.done():
                        continue
                    if refused is not None:
                        waiting.answer.set_exception(refused)
                    else:
                        waiting.answer.set_result(result)
        finally:
            self._committing.pop(user, None)

    async def _decide_group(self, conn: Any, user: str,
                            group: list[_Waiting]) -> list[tuple[Any, Exception | None]]:
        answers: list[tuple[Any, Exception | None]] = []
        async with conn.pipeline(), conn.transaction():
            # The account's first begin creates its row; each transaction locks it until its commit.
            await conn.execute("INSERT INTO ledger_users (user_id) VALUES (%s) ON CONFLICT DO NOTHING", (user,))
            await conn.execute("SELECT 1 FROM ledger_users WHERE user_id = %s FOR UPDATE", (user,))
            for waiting in group:  # in order: each reads what those before it wrote
                fetched = await self._fetch(conn, user, waiting.reads, waiting.now, lock_rows=True)
                try:
                    result, changes = waiting.rule(fetched)
                except Exception as refused:  # noqa: BLE001 - e.g. OverBudget: this begin only, nothing written
                    answers.append((None, refused))
                    continue
                for statement, params in sql.writes(D, user, changes):
                    await conn.execute(statement, params)
                answers.append((result, None))
        return answers

    async def fetch(self, user: str, reads: Reads, now: float) -> Fetched:
        async def run(conn: Any) -> Fetched:
            async with conn.pipeline():
                return await self._fetch(conn, user, reads, now)

        return await self._with(run)

    async def page(self, user: str, query: sql.Query) -> list[Row]:
        statement, params = sql.page(D, user, query)

        async def run(conn: Any) -> list[Row]:
            return [sql.decode(r) for r in await (await conn.execute(statement, params)).fetchall()]

        return await self._with(run)

    async def summary(self, user: str, query: sql.Query, since: float) -> tuple[int, float, float]:
        statement, params = sql.summary(D, user, query, since)

        async def run(conn: Any) -> tuple[int, float, float]:
            count, spent, held = await (await conn.execute(statement, params)).fetchone()
            return int(count), float(spent), float(held)

        return await self._with(run)

    async def following(self, user: str, limit: int) -> list[Row]:
        async def run(conn: Any) -> list[Row]:
            return [sql.decode(r) for r in await (await conn.execute(sql.following(D), (user, limit))).fetchall()]

        return await self._with(run)

    async def prune(self, user: str, before: float, limit: int) -> int:
        rows, hours = sql.prune(D)

        async def run(conn: Any) -> int:
            await conn.execute(hours, (user, sql.hour_of(before)))
            return (await conn.execute(rows, (user, user, before, limit))).rowcount

        return await self._with(run)

    # --- small shared values -------------------------------------------------------------------------
    async def put(self, name: str, value: str, ttl: float) -> None:
        await self._with(lambda conn: conn.execute(
            "INSERT INTO kv (name, value, expires) VALUES (%s, %s, %s) ON CONFLICT (name) DO UPDATE "
            "SET value = excluded.value, expires = excluded.expires", (name, value, time.time() + ttl)))

    async def get(self, name: str) -> str | None:
        async def run(conn: Any) -> str | None:
            row = await (await conn.execute("SELECT value FROM kv WHERE name = %s AND expires > %s",
                                            (name, time.time()))).fetchone()
            return row[0] if row else None

        return await self._with(run)

    async def take(self, name: str) -> str | None:
        async def run(conn: Any) -> str | None:
            row = await (await conn.execute("DELETE FROM kv WHERE name = %s RETURNING value, expires",
                                            (name,))).fetchone()
            return row[0] if row and row[1] > time.time() else None

        return await self._with(run)

    async def delete(self, name: str) -> None:
        await self._with(lambda conn: conn.execute("DELETE FROM kv WHERE name = %s", (name,)))

    async def count(self, name: str, window_seconds: float) -> int:
        now = time.time()
        slot = f"{name}@{int(now // window_seconds)}"

        async def run(conn: Any) -> int:
            count = int((await (await conn.execute(
                "INSERT INTO kv (name, value, expires) VALUES (%s, '1', %s) ON CONFLICT (name) DO UPDATE "
                "SET value = (kv.value::bigint + 1)::text RETURNING value", (slot, now + window_seconds))).fetchone())[0])
            if count == 1:  # now and then: forget a bounded batch of expired values
                await conn.execute("DELETE FROM kv WHERE name IN (SELECT name FROM kv WHERE expires <= %s LIMIT 1000)",
                                   (now,))
            return count

        return await self._with(run)

    # --- estimate calibration -------------------------------------------------------------------------
    async def calibration_sums(self, user: str, model: str) -> tuple[tuple[float, float, int],
                                                                     tuple[float, float, int]]:
        async def run(conn: Any) -> tuple[tuple[float, float, int], tuple[float, float, int]]:
            rows = await (await conn.execute(sql.calibrations(D), (user, model, "*"))).fetchall()
            found = {m: (float(e), float(c), int(n)) for m, e, c, n in rows}
            return found.get(model, (0.0, 0.0, 0)), found.get("*", (0.0, 0.0, 0))

        return await self._with(run)

    async def aclose(self) -> None:
        if self._committing:  # begins already taken into a transaction: let them commit and answer
            with anyio.move_on_after(CONNECT_SECONDS):
                await asyncio.gather(*self._committing.values(), return_exceptions=True)
        await self._pool.close()


def _retrieved(answer: asyncio.Future) -> None:
    """A refusal whose caller gave up is not an 'exception never retrieved' warning."""
    if not answer.cancelled():
        answer.exception()
