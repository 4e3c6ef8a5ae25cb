"""The ledger's tables and statements, for every SQL store (SQLite, PostgreSQL).

Statements are written once with `?` placeholders; `Dialect` adapts the few words that differ.
A row of `paid_starts` keeps in columns what is looked up, filtered or summed (see book.COLUMNS), and
the rest of the row as JSON in `data`.

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

from .book import ALL_MODELS, COLUMNS, REUSE_SECONDS, Calibrate, Change, Delete, Insert, Reads, Row, Update

SCHEMA_VERSION = 1
_SETTLED = "('completed', 'failed')"
_SELECT = "SELECT " + ", ".join(COLUMNS) + ", data FROM paid_starts"


@dataclass(frozen=True)
class Dialect:
    name: str
    real: str  # a float column
    greatest: str  # the larger of two values
    placeholder: str

    def q(self, statement: str) -> str:
        return _placeholders(statement, self.placeholder)


SQLITE = Dialect("sqlite", "REAL", "MAX", "?")
POSTGRES = Dialect("postgres", "DOUBLE PRECISION", "GREATEST", "%s")


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
        elif isinstance(change, Delete):
            out.append((d.q("DELETE FROM paid_starts WHERE user_id = ? AND key = ?"), (user, change.key)))
        elif isinstance(change, Calibrate):
            for model in (change.model, ALL_MODELS):
                out.append((d.q(
                    "INSERT INTO calibrations (user_id, model, estimated, charged, n) VALUES (?, ?, ?, ?, 1) "
                    "ON CONFLICT (user_id, model) DO UPDATE SET estimated = calibrations.estimated + excluded.estimated, "
                    "charged = calibrations.charged + excluded.charged, n = calibrations.n + 1"),
                    (user, model, change.estimated_usd, change.charged_usd)))
    return out


# --- reads ---------------------------------------------------------------------------------------------
def by_key(d: Dialect) -> str:
    return d.q(_SELECT + " WHERE user_id = ? AND key = ?")


def by_run(d: Dialect) -> str:
    return d.q(_SELECT + " WHERE user_id = ? AND run_id = ? LIMIT 1")


def identical(d: Dialect) -> str:
    """The newest reusable row for a request (book.is_reusable, in SQL)."""
    return d.q(_SELECT + f" WHERE user_id = ? AND fingerprint = ? AND tool = ? AND status <> 'failed' "
               f"AND (status NOT IN {_SETTLED} OR created >= ?) ORDER BY created DESC LIMIT 1")


def _sums(d: Dialect) -> str:
    """(settled charges, open reservations) of the rows created at or after a `?`: book.counted_usd in SQL."""
    return (f"COALESCE(SUM(CASE WHEN created >= ? AND status IN {_SETTLED} THEN COALESCE(charged_usd, 0) "
            f"ELSE 0 END), 0), COALESCE(SUM(CASE WHEN created >= ? AND status NOT IN {_SETTLED} "
            f"THEN {d.greatest}(reserved_usd, COALESCE(charged_usd, 0)) ELSE 0 END), 0)")


def totals(d: Dialect) -> str:
    """The budget window's sums, from the (user_id, created, ...) index range alone."""
    return d.q(f"SELECT {_sums(d)} FROM paid_starts WHERE user_id = ? AND created >= ?")


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


def prune(d: Dialect) -> str:
    """At most `limit` rows past retention, oldest first (bounded: never the whole history at once)."""
    return d.q("DELETE FROM paid_starts WHERE user_id = ? AND key IN (SELECT key FROM paid_starts "
               "WHERE user_id = ? AND created < ? ORDER BY created LIMIT ?)")


def calibrations(d: Dialect) -> str:
    return d.q("SELECT model, estimated, charged, n FROM calibrations WHERE user_id = ? AND model IN (?, ?)")


def fetch_plan(d: Dialect, user: str, reads: Reads, now: float) -> list[tuple[str, str, tuple, Any]]:
    """(what, statement, params, tag) for each read a decision needs: each one an index lookup."""
    plan: list[tuple[str, str, tuple, Any]] = [("row", by_key(d), (user, key), key) for key in reads.keys]
    plan += [("identical", identical(d), (user, fp, tool, now - REUSE_SECONDS), (tool, fp))
             for tool, fp in reads.identical]
    if reads.run_id is not None:
        plan.append(("run", by_run(d), (user, reads.run_id), None))
    if reads.window_since is not None:
        since = reads.window_since
        plan.append(("totals", totals(d), (since, since, user, since), None))
    return plan

