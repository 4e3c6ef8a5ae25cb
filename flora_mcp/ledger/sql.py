"""The ledger's tables and statements, for every SQL store (SQLite, PostgreSQL).

Statements are written once with `?` placeholders; `Dialect` adapts the few words that differ.
A row of `paid_starts` keeps in columns what is looked up, filtered or summed (see book.COLUMNS), and
the rest of the row as JSON in `data`.

`budget_hours` keeps each user's settled charges and open reservations per hour of `created`, so the
budget window's totals cost the same with 100 rows in it or 20,000.

Indexes, and what each answers without reading other rows:
  (user_id, key)                  primary key: a start by its idempotency key
  (user_id, run_id)               get_run / observe: a start by its run
  (user_id, fingerprint, created) an identical recent request (reuse within book.REUSE_SECONDS)
  (user_id, created, status, reserved_usd, charged_usd)
                                  list_runs pages, and the budget window's sums from the index alone
  (user_id, created) WHERE status IN ('pending','running')
                                  the runs whose status list_runs refreshes
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from .book import (
    ALL_MODELS,
    COLUMNS,
    REUSE_SECONDS,
    Calibrate,
    Change,
    Delete,
    Fetched,
    Insert,
    Reads,
    Row,
    Update,
    budget_share,
)

SCHEMA_VERSION = 1
_SETTLED = "('completed', 'failed')"
_SELECT = "SELECT " + ", ".join(COLUMNS) + ", data FROM paid_starts"


@dataclass(frozen=True)
class Dialect:
    name: str
    real: str  # a float column
    greatest: str  # the larger of two values
    placeholder: str
    hour: str  # the hour of a row's `created`, as an integer (book: sql.hour_of)

    def q(self, statement: str) -> str:
        return _placeholders(statement, self.placeholder)


SQLITE = Dialect("sqlite", "REAL", "MAX", "?", "CAST(created / 3600 AS INTEGER)")
POSTGRES = Dialect("postgres", "DOUBLE PRECISION", "GREATEST", "%s", "CAST(FLOOR(created / 3600) AS BIGINT)")


@cache
def _placeholders(statement: str, placeholder: str) -> str:
    return statement.replace("?", placeholder)


def schema(d: Dialect) -> list[str]:
    r = d.real
    return [
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
        # One row per user: PostgreSQL locks it to serialise one user's decisions (SELECT ... FOR UPDATE).
        "CREATE TABLE IF NOT EXISTS ledger_users (user_id TEXT PRIMARY KEY)",
        f"""CREATE TABLE IF NOT EXISTS paid_starts (
            user_id TEXT NOT NULL, key TEXT NOT NULL, tool TEXT NOT NULL, fingerprint TEXT NOT NULL, run_id TEXT,
            status TEXT NOT NULL, reserved_usd {r} NOT NULL DEFAULT 0, charged_usd {r}, project_id TEXT,
            created {r} NOT NULL, updated {r} NOT NULL, data TEXT NOT NULL, PRIMARY KEY (user_id, key))""",
        "CREATE INDEX IF NOT EXISTS paid_starts_by_run ON paid_starts (user_id, run_id)",
        "CREATE INDEX IF NOT EXISTS paid_starts_by_request ON paid_starts (user_id, fingerprint, created)",
        ("CREATE INDEX IF NOT EXISTS paid_starts_by_time ON paid_starts "
         "(user_id, created, status, reserved_usd, charged_usd)"),
        ("CREATE INDEX IF NOT EXISTS paid_starts_following ON paid_starts (user_id, created) "
         "WHERE status IN ('pending', 'running')"),
        # The budget sums of each user's hour, moved with every change of a row's counted amount: the
        # window's totals read at most one bucket per hour plus the rows of the window's first, partial hour.
        f"""CREATE TABLE IF NOT EXISTS budget_hours (user_id TEXT NOT NULL, hour BIGINT NOT NULL,
            spent {r} NOT NULL, held {r} NOT NULL, PRIMARY KEY (user_id, hour))""",
        f"CREATE TABLE IF NOT EXISTS kv (name TEXT PRIMARY KEY, value TEXT NOT NULL, expires {r} NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS calibrations (user_id TEXT NOT NULL, model TEXT NOT NULL,
            estimated {r} NOT NULL, charged {r} NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (user_id, model))""",
    ]


# --- rows ----------------------------------------------------------------------------------------------
def encode(user: str, row: Row) -> tuple:
    data = {k: v for k, v in row.items() if k not in COLUMNS}
    return (user, *(row.get(c) for c in COLUMNS), json.dumps(data, separators=(",", ":"), sort_keys=True))


def decode(record: tuple) -> Row:
    row = json.loads(record[-1])
    row.update(zip(COLUMNS, record[:-1], strict=False))
    row["reserved_usd"] = row["reserved_usd"] or 0.0
    return row


INSERT = ("INSERT INTO paid_starts (user_id, " + ", ".join(COLUMNS) + ", data) VALUES ("
          + ", ".join("?" * (len(COLUMNS) + 2)) + ") ON CONFLICT (user_id, key) DO UPDATE SET "
          + ", ".join(f"{c} = excluded.{c}" for c in (*COLUMNS[1:], "data")))


def writes(d: Dialect, user: str, changes: list[Change]) -> list[tuple[str, tuple]]:
    """The statements for a decision's changes, each touching one row (two for a calibration)."""
    out: list[tuple[str, tuple]] = []
    for change in changes:
        if isinstance(change, Insert | Update):  # an update writes the whole row back by its key
            out.append((d.q(INSERT), encode(user, change.row)))
            out += _move_budget(d, user, change.row, budget_share(change.row),
                                budget_share(change.before if isinstance(change, Update) else None))
        elif isinstance(change, Delete):
            out.append((d.q("DELETE FROM paid_starts WHERE user_id = ? AND key = ?"), (user, change.key)))
            out += _move_budget(d, user, change.before, (0.0, 0.0), budget_share(change.before))
        elif isinstance(change, Calibrate):
            for model in (change.model, ALL_MODELS):
                out.append((d.q(
                    "INSERT INTO calibrations (user_id, model, estimated, charged, n) VALUES (?, ?, ?, ?, 1) "
                    "ON CONFLICT (user_id, model) DO UPDATE SET estimated = calibrations.estimated + excluded.estimated, "
                    "charged = calibrations.charged + excluded.charged, n = calibrations.n + 1"),
                    (user, model, change.estimated_usd, change.charged_usd)))
    return out


def _move_budget(d: Dialect, user: str, row: Row, after: tuple[float, float],
                 before: tuple[float, float]) -> list[tuple[str, tuple]]:
    spent, held = after[0] - before[0], after[1] - before[1]
    if spent == 0 and held == 0:
        return []
    return [(d.q("INSERT INTO budget_hours (user_id, hour, spent, held) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT (user_id, hour) DO UPDATE SET spent = budget_hours.spent + excluded.spent, "
                 "held = budget_hours.held + excluded.held"), (user, hour_of(row["created"]), spent, held))]


def hour_of(created: float) -> int:
    return int(created // 3600)


def rebuild_budget_hours(d: Dialect) -> tuple[str, str]:
    """A user's hourly budget sums from their rows (after rows were written in bulk, e.g. by a benchmark)."""
    return d.q("DELETE FROM budget_hours WHERE user_id = ?"), d.q(
        f"INSERT INTO budget_hours (user_id, hour, spent, held) SELECT user_id, {d.hour}, {_sums(d, windowed=False)} "
        f"FROM paid_starts WHERE user_id = ? GROUP BY user_id, {d.hour}")


# --- reads ---------------------------------------------------------------------------------------------
def by_key(d: Dialect) -> str:
    return d.q(_SELECT + " WHERE user_id = ? AND key = ?")


def by_run(d: Dialect) -> str:
    return d.q(_SELECT + " WHERE user_id = ? AND run_id = ? LIMIT 1")


def identical(d: Dialect) -> str:
    """The newest reusable row for a request (book.is_reusable, in SQL)."""
    return d.q(_SELECT + f" WHERE user_id = ? AND fingerprint = ? AND tool = ? AND status <> 'failed' "
               f"AND (status NOT IN {_SETTLED} OR created >= ?) ORDER BY created DESC LIMIT 1")


def _sums(d: Dialect, *, windowed: bool = True) -> str:
    """(settled charges, open reservations) of the rows created at or after a `?` (or of all rows):
    book.counted_usd in SQL."""
    when = "created >= ? AND " if windowed else ""
    return (f"COALESCE(SUM(CASE WHEN {when}status IN {_SETTLED} THEN COALESCE(charged_usd, 0) "
            f"ELSE 0 END), 0) AS spent, COALESCE(SUM(CASE WHEN {when}status NOT IN {_SETTLED} "
            f"THEN {d.greatest}(reserved_usd, COALESCE(charged_usd, 0)) ELSE 0 END), 0) AS held")


def totals(d: Dialect) -> str:
    """The budget window's sums: the whole hours from budget_hours, the first partial hour from its rows
    (an index range of at most an hour)."""
    return d.q(f"SELECT h.spent + e.spent, h.held + e.held FROM "
               f"(SELECT COALESCE(SUM(spent), 0) AS spent, COALESCE(SUM(held), 0) AS held FROM budget_hours "
               f"WHERE user_id = ? AND hour > ?) h, "
               f"(SELECT {_sums(d, windowed=False)} FROM paid_starts "
               f"WHERE user_id = ? AND created >= ? AND created < ?) e")


@dataclass(frozen=True)
class Query:
    """A list_runs page: newest first, filtered in SQL."""

    project_id: str | None = None
    status: str | None = None  # "unfinished", "completed", "failed"
    limit: int = 20


def _filter(query: Query) -> tuple[str, tuple]:
    where, params = "user_id = ?", ()
    if query.project_id:
        where, params = where + " AND project_id = ?", (query.project_id,)
    if query.status == "unfinished":
        where += f" AND status NOT IN {_SETTLED}"
    elif query.status:
        where, params = where + " AND status = ?", (*params, query.status)
    return where, params


def page(d: Dialect, user: str, query: Query) -> tuple[str, tuple]:
    where, params = _filter(query)
    return d.q(f"{_SELECT} WHERE {where} ORDER BY created DESC LIMIT ?"), (user, *params, query.limit)


def summary(d: Dialect, user: str, query: Query, since: float) -> tuple[str, tuple]:
    """(rows matching, their settled charges and open reservations inside the window)."""
    where, params = _filter(query)
    return d.q(f"SELECT COUNT(*), {_sums(d)} FROM paid_starts WHERE {where}"), (since, since, user, *params)


def following(d: Dialect) -> str:
    return d.q(_SELECT + " WHERE user_id = ? AND status IN ('pending', 'running') ORDER BY created DESC LIMIT ?")


def prune(d: Dialect) -> tuple[str, str]:
    """At most `limit` rows past retention, oldest first (bounded: never the whole history at once), and
    the hourly budget sums of hours past retention."""
    return (d.q("DELETE FROM paid_starts WHERE user_id = ? AND key IN (SELECT key FROM paid_starts "
                "WHERE user_id = ? AND created < ? ORDER BY created LIMIT ?)"),
            d.q("DELETE FROM budget_hours WHERE user_id = ? AND hour < ?"))


def calibrations(d: Dialect) -> str:
    return d.q("SELECT model, estimated, charged, n FROM calibrations WHERE user_id = ? AND model IN (?, ?)")


def fetch_plan(d: Dialect, user: str, reads: Reads, now: float,
               lock_rows: bool = False) -> list[tuple[str, str, tuple, Any]]:
    """(what, statement, params, tag) for each read a decision needs: each one an index lookup.
    `lock_rows`: the rows read stay locked until the transaction ends (PostgreSQL's FOR UPDATE)."""
    lock = " FOR UPDATE" if lock_rows else ""
    plan: list[tuple[str, str, tuple, Any]] = [("row", by_key(d) + lock, (user, key), key) for key in reads.keys]
    plan += [("identical", identical(d) + lock, (user, fp, tool, now - REUSE_SECONDS), (tool, fp))
             for tool, fp in reads.identical]
    if reads.run_id is not None:
        plan.append(("run", by_run(d) + lock, (user, reads.run_id), None))
    if reads.window_since is not None:
        since = reads.window_since
        edge = hour_of(since)
        plan.append(("totals", totals(d), (user, edge, user, since, (edge + 1) * 3600.0), None))
    return plan


def assemble(plan: list[tuple[str, str, tuple, Any]], records: list[tuple | None]) -> Fetched:
    """What a decision reads, from each planned statement's first record (in the plan's order)."""
    fetched = Fetched()
    for (what, _, _, tag), record in zip(plan, records, strict=True):
        if what == "totals":
            fetched.totals = (round(record[0], 6), round(record[1], 6))
        elif record is not None:
            row = decode(record)
            if what == "row":
                fetched.rows[tag] = row
            elif what == "identical":
                fetched.identical[tag] = row
            else:
                fetched.run = row
    return fetched

