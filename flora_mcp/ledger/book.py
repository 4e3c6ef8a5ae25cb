"""One user's book of paid starts, and the decisions made on it: pure functions, no I/O.

Both stores (SQLite, Redis) load a user's book, apply one of these functions inside a transaction
and write back what changed, so the rules live here once and hold the same for every backend.

A row is a plain dict (it is stored as JSON). Its `status`:
  starting  - intent recorded, the POST is under way (reserved money counts against the budget)
  unknown   - the POST's outcome is unknown (dropped, timed out): it may have been charged
  accepted  - FLORA accepted and charged it once, but its run ID never reached us (409 on a retry)
  pending / running - FLORA accepted it (run_id known), not finished
  completed / failed - settled: `charged_usd` is FLORA's final charge
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..idempotency import KEY_SAFE_SECONDS  # FLORA remembers a key at least this long: resend only within it

Row = dict[str, Any]
Book = dict[str, Row]  # idempotency key -> row

RETENTION_SECONDS = 30 * 24 * 3600  # rows older than this are dropped (list_runs looks back this far)
MAX_ROWS = 1000  # per user: the newest are kept
REUSE_SECONDS = 600  # an identical request within this long returns the earlier run
STALE_START_SECONDS = 120  # a "starting" row this old lost its process (kill -9): treat the outcome as unknown
SETTLED = ("completed", "failed")
UNFINISHED = ("starting", "unknown", "accepted", "pending", "running")


@dataclass(frozen=True)
class Intent:
    """A paid start about to be made."""

    key: str  # idempotency key: the agent's, or one we made
    key_given: bool  # the agent chose the key (a different key means "a new run")
    tool: str
    fingerprint: str  # hash of the normalised request FLORA would receive
    reserve_usd: float  # what the budget holds back until FLORA's charge is known
    estimated_usd: float | None
    new_run: bool = False  # the agent asked for a new run even if an identical one is recent
    details: dict[str, Any] = field(default_factory=dict)  # model, project_id, workspace_id, label, kind


Kind = Literal["start", "resend", "follow", "accepted", "wait", "conflict", "expired"]


@dataclass(frozen=True)
class Decision:
    """What to do for one intent. `start`/`resend` POST with `key`; `resend` means the key may have
    reached FLORA before, so a 409 answers "accepted once". `follow` answers with an earlier run.
    `expired`: the outcome is unknown and FLORA may have forgotten the key, so resending it is unsafe."""

    kind: Kind
    key: str
    row: Row
    reused: bool = False  # an identical earlier request answered this one


class OverBudget(Exception):
    def __init__(self, spent_usd: float, reserved_usd: float, asked_usd: float, budget_usd: float) -> None:
        self.spent_usd, self.reserved_usd, self.asked_usd, self.budget_usd = spent_usd, reserved_usd, asked_usd, budget_usd
        super().__init__("over budget")


def counted_usd(row: Row) -> float:
    """What a row holds against the budget: its final charge once settled, else its reservation
    (or the charge so far, if FLORA already reports more)."""
    if row["status"] in SETTLED:
        return float(row.get("charged_usd") or 0.0)
    return max(float(row.get("reserved_usd") or 0.0), float(row.get("charged_usd") or 0.0))


def window_totals(book: Book, now: float, window_seconds: float) -> tuple[float, float]:
    """(settled charges, open reservations) of rows created inside the window."""
    spent = reserved = 0.0
    for row in book.values():
        if now - row["created"] <= window_seconds:
            if row["status"] in SETTLED:
                spent += counted_usd(row)
            else:
                reserved += counted_usd(row)
    return round(spent, 6), round(reserved, 6)


def is_stale_start(row: Row, now: float) -> bool:
    """A 'starting' row whose process died mid-POST (kill -9): its outcome is unknown."""
    return row["status"] == "starting" and now - row["updated"] > STALE_START_SECONDS


def _decide_existing(row: Row, now: float, owner: str, reused: bool) -> Decision:
    if row["status"] == "accepted":
        return Decision("accepted", row["key"], row, reused)
    if row["run_id"]:
        return Decision("follow", row["key"], row, reused)
    if row["status"] == "starting" and not is_stale_start(row, now):
        return Decision("wait", row["key"], row, reused)
    if now - row["created"] > KEY_SAFE_SECONDS:  # FLORA may have forgotten the key: a resend could charge again
        return Decision("expired", row["key"], row, reused)
    # Outcome unknown (or its process died mid-POST): send the same key again; FLORA never starts a
    # second run for it, and answers either the run (replay) or 409 (accepted once, ID lost).
    row.update(status="starting", updated=now, owner=owner, attempts=row.get("attempts", 1) + 1)
    return Decision("resend", row["key"], row, reused)


def _identical(book: Book, intent: Intent, now: float) -> Row | None:
    """The newest earlier row for the same tool and request that is unfinished or recent."""
    best = None
    for row in book.values():
        if row["tool"] != intent.tool or row["fingerprint"] != intent.fingerprint or row["status"] == "failed":
            continue
        if row["status"] in SETTLED and now - row["created"] > REUSE_SECONDS:
            continue
        if best is None or row["created"] > best["created"]:
            best = row
    return best


def preview(book: Book, intents: list[Intent], *, now: float) -> list[Decision]:
    """What `begin` would decide, on a copy, with no budget: which intents are new starts to guard."""
    copy = {k: dict(r) for k, r in book.items()}
    return begin(copy, intents, now=now, owner="preview", budget_usd=None, window_seconds=0)


def begin(book: Book, intents: list[Intent], *, now: float, owner: str, budget_usd: float | None,
          window_seconds: float) -> list[Decision]:
    """Decide every intent at once (a batch reserves its sum), mutating `book` with new intents.

    Raises OverBudget, changing nothing, when the new reservations do not fit in the budget.
    """
    decisions: list[Decision] = []
    new_rows: list[Row] = []
    for intent in intents:
        row = book.get(intent.key)
        if row is not None:
            if row["fingerprint"] != intent.fingerprint or row["tool"] != intent.tool:
                decisions.append(Decision("conflict", intent.key, row))
            else:
                decisions.append(_decide_existing(row, now, owner, reused=False))
            continue
        if not intent.key_given and not intent.new_run:
            earlier = _identical(book, intent, now)
            if earlier is not None:
                decisions.append(_decide_existing(earlier, now, owner, reused=True))
                continue
        row = {
            "key": intent.key, "tool": intent.tool, "fingerprint": intent.fingerprint, "run_id": None,
            "status": "starting", "reserved_usd": round(intent.reserve_usd, 6), "estimated_usd": intent.estimated_usd,
            "charged_usd": None, "created": now, "updated": now, "owner": owner, "attempts": 1, **intent.details,
        }
        new_rows.append(row)
        decisions.append(Decision("start", intent.key, row))
    if budget_usd is not None and new_rows:
        spent, reserved = window_totals(book, now, window_seconds)
        asked = sum(r["reserved_usd"] for r in new_rows)
        if spent + reserved + asked > budget_usd + 1e-9 or (asked == 0 and spent + reserved >= budget_usd):
            raise OverBudget(spent, reserved, asked, budget_usd)
    for row in new_rows:
        book[row["key"]] = row
    return decisions


def prune(book: Book, now: float, keep_seconds: float) -> None:
    """Drop rows past retention; past MAX_ROWS, drop the oldest settled rows outside `keep_seconds` (the
    budget window). Unfinished rows stay: they hold money and may still need their key resent."""
    for key in [k for k, r in book.items() if now - r["created"] > RETENTION_SECONDS]:
        del book[key]
    if len(book) > MAX_ROWS:
        keep = max(keep_seconds, REUSE_SECONDS)
        old = sorted((r["created"], k) for k, r in book.items() if r["status"] in SETTLED and now - r["created"] > keep)
        for _, key in old[: len(book) - MAX_ROWS]:
            del book[key]


def find_run(book: Book, run_id: str) -> Row | None:
    return next((r for r in book.values() if r.get("run_id") == run_id), None)


def settle(row: Row, status: str, charged_usd: float | None, now: float) -> bool:
    """Record FLORA's latest word on a run. True when this call settled it (first time finished)."""
    newly = status in SETTLED and row["status"] not in SETTLED
    if row["status"] in SETTLED:
        return False
    row["status"] = status
    row["updated"] = now
    if charged_usd is not None:
        row["charged_usd"] = round(float(charged_usd), 6)
    if newly:
        row["reserved_usd"] = 0.0
    return newly
