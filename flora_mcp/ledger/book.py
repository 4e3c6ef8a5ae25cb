"""The rules of the ledger: every decision about a user's paid starts, as pure functions, no I/O.

A store never decides. For each decision it fetches, under that user's lock, only what the decision
needs (`Reads`: rows by idempotency key, the newest identical request, one run, the budget window's
sums) and hands it to a rule here, which answers with its result and the `Change`s to write. So each
rule is written once and holds the same on every store (SQLite, PostgreSQL), and a decision costs
the same with 10 rows or 100,000.

A row is a plain dict. Its `status`:
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

RETENTION_SECONDS = 30 * 24 * 3600  # rows older than this are dropped (list_runs looks back this far)
REUSE_SECONDS = 600  # an identical request within this long returns the earlier run
STALE_START_SECONDS = 120  # a "starting" row this old lost its process (kill -9): treat the outcome as unknown
SETTLED = ("completed", "failed")
UNFINISHED = ("starting", "unknown", "accepted", "pending", "running")
FOLLOWED = ("pending", "running")  # started runs whose status FLORA still reports as changing

# The columns every store keeps for a row (indexed or summed); everything else rides in `data`.
COLUMNS = ("key", "tool", "fingerprint", "run_id", "status", "reserved_usd", "charged_usd", "project_id",
           "created", "updated")


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
    """held_usd: money the budget holds for unfinished runs (each row's reserved_usd, or its charge if larger),
    the same figure list_runs reports as held_usd."""

    def __init__(self, spent_usd: float, held_usd: float, asked_usd: float, budget_usd: float) -> None:
        self.spent_usd, self.held_usd, self.asked_usd, self.budget_usd = spent_usd, held_usd, asked_usd, budget_usd
        super().__init__("over budget")


# --- what a store fetches and writes for a decision ----------------------------------------------------
@dataclass(frozen=True)
class Reads:
    """What one decision needs, fetched by the store under the user's lock (each by an index)."""

    keys: tuple[str, ...] = ()
    identical: tuple[tuple[str, str], ...] = ()  # (tool, fingerprint): the newest reusable row for each
    run_id: str | None = None
    window_since: float | None = None  # the budget window's sums: rows created at or after this
    # The decision may add rows or weigh the account's budget (begin): it needs the whole account to itself.
    # Otherwise (after the POST, status reads) locking the rows it reads is enough.
    whole_account: bool = False


@dataclass
class Fetched:
    rows: dict[str, Row] = field(default_factory=dict)  # by idempotency key
    identical: dict[tuple[str, str], Row] = field(default_factory=dict)
    run: Row | None = None
    totals: tuple[float, float] = (0.0, 0.0)  # (settled charges, open reservations) in the window


@dataclass(frozen=True)
class Insert:
    row: Row


@dataclass(frozen=True)
class Update:
    row: Row  # the whole row, written back by its key
    before: Row  # as fetched: the store moves the budget sums by the difference


@dataclass(frozen=True)
class Delete:
    key: str
    before: Row


@dataclass(frozen=True)
class Calibrate:
    """Learn from a settled run: its estimate before calibration, and FLORA's charge."""

    model: str
    estimated_usd: float
    charged_usd: float


Change = Insert | Update | Delete | Calibrate


# --- reading rows --------------------------------------------------------------------------------------
def counted_usd(row: Row) -> float:
    """What a row holds against the budget: its final charge once settled, else its reservation
    (or the charge so far, if FLORA already reports more). Stores compute the same in SQL (`COUNTED_SQL`)."""
    if row["status"] in SETTLED:
        return float(row.get("charged_usd") or 0.0)
    return max(float(row.get("reserved_usd") or 0.0), float(row.get("charged_usd") or 0.0))


def budget_share(row: Row | None) -> tuple[float, float]:
    """(settled charge, open reservation) a row adds to its hour of the budget sums."""
    if row is None:
        return 0.0, 0.0
    return (counted_usd(row), 0.0) if row["status"] in SETTLED else (0.0, counted_usd(row))


def is_stale_start(row: Row, now: float) -> bool:
    """A 'starting' row whose process died mid-POST (kill -9): its outcome is unknown."""
    return row["status"] == "starting" and now - row["updated"] > STALE_START_SECONDS


def is_reusable(row: Row, now: float) -> bool:
    """An earlier identical request answers a new one: unfinished, or settled (not failed) moments ago.
    Stores select with the same condition (`REUSABLE_SQL`), newest first."""
    if row["status"] == "failed":
        return False
    return row["status"] not in SETTLED or now - row["created"] <= REUSE_SECONDS


def reads_for_begin(intents: list[Intent], now: float, window_seconds: float, budget_usd: float | None) -> Reads:
    identical = tuple(dict.fromkeys((i.tool, i.fingerprint) for i in intents if not i.key_given and not i.new_run))
    return Reads(keys=tuple(dict.fromkeys(i.key for i in intents)), identical=identical,
                 window_since=now - window_seconds if budget_usd is not None else None, whole_account=True)


# --- decisions -----------------------------------------------------------------------------------------
def _decide_existing(row: Row, now: float, owner: str, reused: bool, changes: list[Change]) -> Decision:
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
    changed = row | {"status": "starting", "updated": now, "owner": owner, "attempts": row.get("attempts", 1) + 1}
    changes.append(Update(changed, row))
    return Decision("resend", changed["key"], changed, reused)


def begin(fetched: Fetched, intents: list[Intent], *, now: float, owner: str,
          budget_usd: float | None) -> tuple[list[Decision], list[Change]]:
    """Decide every intent at once (a batch reserves its sum): the decisions and the rows to write.

    Raises OverBudget, changing nothing, when the new reservations do not fit in the budget.
    """
    decisions: list[Decision] = []
    changes: list[Change] = []
    new_rows: list[Row] = []
    for intent in intents:
        row = fetched.rows.get(intent.key)
        if row is not None:
            if row["fingerprint"] != intent.fingerprint or row["tool"] != intent.tool:
                decisions.append(Decision("conflict", intent.key, row))
            else:
                decisions.append(_decide_existing(row, now, owner, False, changes))
            continue
        if not intent.key_given and not intent.new_run:
            earlier = fetched.identical.get((intent.tool, intent.fingerprint))
            if earlier is not None and is_reusable(earlier, now):
                decisions.append(_decide_existing(earlier, now, owner, True, changes))
                continue
        row = {
            "key": intent.key, "tool": intent.tool, "fingerprint": intent.fingerprint, "run_id": None,
            "status": "starting", "reserved_usd": round(intent.reserve_usd, 6), "estimated_usd": intent.estimated_usd,
            "charged_usd": None, "created": now, "updated": now, "owner": owner, "attempts": 1, **intent.details,
        }
        new_rows.append(row)
        decisions.append(Decision("start", intent.key, row))
    if budget_usd is not None and new_rows:
        spent, held = fetched.totals
        asked = sum(r["reserved_usd"] for r in new_rows)
        if spent + held + asked > budget_usd + 1e-9 or (asked == 0 and spent + held >= budget_usd):
            raise OverBudget(spent, held, asked, budget_usd)
    changes.extend(Insert(r) for r in new_rows)
    return decisions, changes


def edit(row: Row | None, now: float, **values: Any) -> list[Change]:
    """After the POST: the run ID, an unknown outcome or an accepted start, on a row not yet settled."""
    if row is None or row["status"] in SETTLED:
        return []
    return [Update(row | values | {"updated": now}, row)]


def release(row: Row | None) -> list[Change]:
    """FLORA refused the start (nothing was charged): forget the intent, freeing its reservation."""
    if row is None or row.get("run_id"):
        return []
    return [Delete(row["key"], row)]


def observe(row: Row | None, status: str, charged_usd: float | None, now: float) -> tuple[Row | None, list[Change]]:
    """FLORA's latest word on a run: the row if this settled it (first time finished), and what to write.
    Nothing to write when nothing changed, so a status check that learns nothing writes nothing."""
    if status not in SETTLED and status not in FOLLOWED:
        return None, []
    if row is None:
        return None, []
    # FLORA's charge settles after the run: a completed run answered $0 takes its charge when it comes
    late_charge = row["status"] == status == "completed" and not row.get("charged_usd") and bool(charged_usd)
    if row["status"] in SETTLED and not late_charge:
        return None, []
    if row["status"] == status and charged_usd in (None, row.get("charged_usd")):
        return None, []
    newly = status in SETTLED and row["status"] not in SETTLED
    before, row = row, row | {"status": status, "updated": now}
    if charged_usd is not None:
        row["charged_usd"] = round(float(charged_usd), 6)
    if newly:
        row["reserved_usd"] = 0.0
    changes: list[Change] = [Update(row, before)]
    # Learned from the charge itself: a $0 answer is an unsettled charge, not a ratio of 0
    if status == "completed" and row.get("charged_usd") and row.get("model") and row.get("estimated_usd") \
            and (newly or late_charge):
        raw = row["estimated_usd"] / (row.get("calibration") or 1.0)  # the estimate before any learned ratio
        changes.append(Calibrate(row["model"], raw, row["charged_usd"]))
    return (row if newly else None), changes


@dataclass(frozen=True)
class Calibration:
    """charged ÷ estimated learned from this account's settled runs: for the model (`scope="model"`), else
    over all its models (`"account"`) before the model has history, else none (ratio 1.0, runs 0)."""

    ratio: float = 1.0
    runs: int = 0
    scope: Literal["model", "account", "none"] = "none"


ALL_MODELS = "*"  # the account-wide calibration row


def calibration(model: tuple[float, float, int], account: tuple[float, float, int]) -> Calibration:
    """From the (estimated, charged, runs) sums of the model and of the whole account."""
    for (estimated, charged, n), scope in ((model, "model"), (account, "account")):
        if n > 0 and estimated > 0:
            return Calibration(charged / estimated, n, scope)  # type: ignore[arg-type]
    return Calibration()
