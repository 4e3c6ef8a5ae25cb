"""Every paid start goes through here: recall before the POST, record what FLORA said after it.

    start = paid_start(call, "start_generation", body, estimate, idempotency_key=…)
    await reserve(call, [start], "Generation")   # recall: guards, the ledger's write-ahead intent, earlier runs
    if start.must_post:
        async with recording_the_post(call, start) as post:   # shielded; records what FLORA said
            post.started(await call.client.start_generation(…, idempotency_key=start.key, resend=start.resend))
    return await answer(call, start, wait_seconds)

`reserve` answers from the ledger what was asked before (the same idempotency key, or the same
request moments ago) and holds the budget for what is new, atomically across processes and replicas.
`recording_the_post` shields the POST from cancellation (a client that gives up mid-POST must not lose a run
FLORA accepted), bounds it, and records what FLORA said. Whatever fails after FLORA accepted a start,
the answer carries the run ID and the idempotency key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from .._ids import new_idempotency_key
from ..config import budget_usd
from ..errors import AcceptedRunLostError, FloraError
from ..ledger import Decision, Intent, LedgerUnavailable, OverBudget, request_fingerprint
from .callbacks import expect_webhook
from .canvas_links import note_run_project
from .runs import describe_run, unknown_status_row, wait_budget
from .spending import check_max_usd, guard_cost, over_budget_message
from .toolcall import ToolCall
from .tooling import NOTHING_STARTED, ToolInputError, ToolResult
from .waiting import follow

if TYPE_CHECKING:
    from ..models import RunStarted
    from .estimates import Estimate

logger = logging.getLogger("flora_mcp.server")

POST_DEADLINE = 120.0  # longest a shielded start may take (the client's own retries stop well before)


@dataclass
class PaidStart:
    tool: str
    intent: Intent
    estimate: Estimate
    decision: Decision | None = None
    run_id: str | None = None
    outcome: str = "new"  # started | unknown | accepted | refused
    note: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The idempotency key in force: an earlier identical start's, when the ledger answered with it."""
        return self.decision.key if self.decision is not None else self.intent.key

    @property
    def must_post(self) -> bool:
        """Whether this start needs its POST (False: `reserve` answered it with an earlier run)."""
        assert self.decision is not None, "reserve() first"
        return self.decision.kind not in ("wait", "follow", "accepted", "expired")

    @property
    def resend(self) -> bool:
        """The key may have reached FLORA before, so a 409 means FLORA has the start: a POST repeating
        one whose answer was lost, or a key the agent chose (another server or a lost ledger may have
        used it)."""
        return self.decision is not None and (self.decision.kind == "resend" or self.intent.key_given)


def paid_start(call: ToolCall, tool: str, body: dict[str, Any], estimate: Estimate, *,
               idempotency_key: str | None = None, new_run: bool = False, **details: Any) -> PaidStart:
    """A start as the ledger sees it: fingerprinted by its normalised request body."""
    intent = Intent(key=idempotency_key or new_idempotency_key(), key_given=idempotency_key is not None, tool=tool,
                    fingerprint=request_fingerprint(tool, body), reserve_usd=estimate.reserve_usd,
                    estimated_usd=estimate.usd, new_run=new_run,
                    details={k: v for k, v in details.items() if v is not None} | {"calibration": estimate.calibration})
    return PaidStart(tool, intent, estimate)


async def reserve(call: ToolCall, starts: list[PaidStart], what: str, max_usd: float | None = None) -> None:
    """Checks before spend, then the write-ahead intent: guards for what is new (the agent's max_usd
    over their total), one atomic reservation for all (a batch reserves its sum), and earlier runs for
    what was asked before."""
    try:
        dry_decisions = await call.ledger.dry_run(call.user_id, [s.intent for s in starts])
        fresh = [s for s, d in zip(starts, dry_decisions) if d.kind == "start"]
        if fresh:
            check_max_usd([s.estimate for s in fresh], max_usd, what)
            await guard_cost(call, [s.estimate for s in fresh], what)
        budget = budget_usd(call.settings)
        window = call.settings.budget_window_hours * 3600
        decisions = await call.ledger.begin(call.user_id, [s.intent for s in starts], budget_usd=budget,
                                            window_seconds=window)
    except OverBudget as exc:
        raise ToolInputError(over_budget_message(what, exc.spent_usd, exc.held_usd, exc.asked_usd,
                                                 exc.budget_usd, call.settings.budget_window_hours)) from None
    except LedgerUnavailable as exc:  # no POST without a recorded intent
        raise LedgerUnavailable(f"{what} was not started: {exc.message}",
                                hint=f"{exc.hint}. {NOTHING_STARTED}") from None
    for start, decision in zip(starts, decisions):
        if decision.kind == "conflict":
            raise ToolInputError(
                f"idempotency_key {start.key!r} was used for a different {decision.row['tool']} request "
                f"(run {decision.row.get('run_id') or 'unknown'}). {NOTHING_STARTED}. To repeat that run call again "
                "with its exact arguments; for a new run use a new idempotency_key")
        start.decision = decision
        if decision.kind in ("follow", "accepted", "expired"):
            _adopt(start, decision.row)
            if decision.kind == "expired":
                start.outcome = "expired"
    waiting = [s for s in starts if s.decision is not None and s.decision.kind == "wait"]
    if waiting:  # an identical call is starting these right now: use its starts
        async with anyio.create_task_group() as tg:
            for start in waiting:
                tg.start_soon(_adopt_when_started, call, start)
        if any(s.outcome == "refused" for s in waiting):  # FLORA refused that start: nothing was charged
            raise ToolInputError(f"an identical call that was starting this was refused by FLORA. {NOTHING_STARTED}; "
                                 "call again to try it yourself")


async def _adopt_when_started(call: ToolCall, start: PaidStart) -> None:
    assert start.decision is not None
    row = await call.ledger.wait_for_start(call.user_id, start.decision.key)
    if row is None:
        start.outcome = "refused"
    else:
        _adopt(start, row)


class Post:
    """The one POST inside `recording_the_post`: the handler hands FLORA's answer to `started`."""

    def __init__(self) -> None:
        self.run: RunStarted | None = None

    def started(self, run: RunStarted) -> None:
        self.run = run


@asynccontextmanager
async def recording_the_post(call: ToolCall, start: PaidStart) -> AsyncIterator[Post]:
    """Around a paid tool's POST (whose answer goes to `post.started(...)`): shielded from cancellation,
    bounded by POST_DEADLINE, and its outcome written to the ledger. A refusal is raised, saying nothing
    was charged. Nothing after the POST raises for the ledger's sake: a write that fails is retried in the
    background. The handler calls the client itself, so the stack reads handler -> client -> _request."""
    refused = None
    post = Post()
    with anyio.CancelScope(shield=True):  # a client that gives up mid-POST must not lose an accepted run
        with anyio.move_on_after(POST_DEADLINE):
            try:
                yield post
            except AcceptedRunLostError:
                start.outcome = "accepted"
                await _record(call, start, "accepted_without_id")
            except FloraError as exc:
                if exc.may_have_started:
                    start.outcome, start.note = "unknown", exc.message
                    await _record(call, start, "outcome_unknown", exc.message)
                else:
                    start.outcome = "refused"
                    await _record(call, start, "release")
                    refused = _nothing_charged(exc)
            except Exception as exc:  # noqa: BLE001 - a bug or an unreadable answer after the POST went out: it may have started
                logger.warning("start %s: %s after the POST; outcome unknown", start.key, type(exc).__name__)
                start.outcome, start.note = "unknown", f"its answer could not be read ({type(exc).__name__})"
                await _record(call, start, "outcome_unknown", start.note)
            else:
                if post.run is None:
                    raise RuntimeError("the POST inside recording_the_post() hands FLORA's answer to post.started()")
                await _started(call, start, post.run)
        if start.outcome == "new":  # the deadline passed mid-POST
            start.outcome, start.note = "unknown", f"FLORA did not answer within {POST_DEADLINE:g} s"
            await _record(call, start, "outcome_unknown", start.note)
    if refused is not None:
        raise refused


async def _started(call: ToolCall, start: PaidStart, started: RunStarted) -> None:
    """FLORA accepted the start and named its run: record it."""
    start.run_id, start.outcome = started.run_id, "started"
    note_run_project(call, started)
    model = started.model.model_id if started.model else None
    start.details = {"model": model} if model and not start.intent.details.get("model") else {}
    if start.details:  # the model FLORA chose when none was named: get_run reports it too
        call.user_state.models_used[started.run_id] = model
    if started.estimated_seconds is not None:
        call.user_state.estimates[started.run_id] = started.estimated_seconds
    if not await _record(call, start, "started", start.run_id, estimated_seconds=started.estimated_seconds,
                         **start.details):
        start.note = ("started, but the ledger could not record it yet; this server keeps trying. Until then "
                      "list_runs does not show it: keep this run_id")
    await expect_webhook(call, started)  # FLORA will call back: no status polls until it does
    await call.info(f"started {started.run_id}")


async def _record(call: ToolCall, start: PaidStart, what: str, *args: Any, **kwargs: Any) -> bool:
    """Write what FLORA said about a start to the ledger, after the POST. The run exists (or may) whatever
    the ledger does: a write that fails (locked, unreachable, deleted) never costs the agent its answer.
    It is logged loudly with the run ID and key, and retried in the background. False when it failed."""
    user, key = call.user_id, start.key
    method = getattr(call.ledger, what)
    try:
        await method(user, key, *args, **kwargs)
        return True
    except Exception as exc:  # noqa: BLE001 - any store failure: the answer must still go out
        described = f"{what} for run {start.run_id or '(no run ID)'}, idempotency_key {key}"
        logger.error("ledger: could not record %s (%s); the answer goes out, retrying in the background",
                     described, exc if isinstance(exc, LedgerUnavailable) else type(exc).__name__)
        call.ledger.keep_trying(described, lambda: method(user, key, *args, **kwargs))
        return False


def _adopt(start: PaidStart, row: dict[str, Any]) -> None:
    """Answer with an earlier start of the same request (or key)."""
    start.run_id = row.get("run_id")
    if row["status"] == "accepted":
        start.outcome = "accepted"
    elif start.run_id:
        start.outcome = "started"
    else:
        start.outcome, start.note = "unknown", row.get("note") or "another call was starting it"
    if row.get("estimated_seconds") and start.run_id:
        start.details["estimated_seconds"] = row["estimated_seconds"]


def _nothing_charged(exc: FloraError) -> FloraError:
    """The same error, saying what an agent most needs to know after a refused start."""
    hint = f"{exc.hint}. {NOTHING_STARTED}" if exc.hint else NOTHING_STARTED
    return type(exc)(exc.message, status=exc.status, code=exc.code, fields=exc.fields, hint=hint,
                     retry_after=exc.retry_after)


# --- answers -------------------------------------------------------------------------------------------
def start_facts(start: PaidStart) -> dict[str, Any]:
    """What every answer about a paid start carries, whatever happened after it."""
    facts: dict[str, Any] = {"idempotency_key": start.key}
    if start.decision is not None and start.decision.reused:
        age = int(time.time() - (start.decision.row["created"] if start.decision else time.time()))
        facts["reused"] = True
        facts["reused_note"] = (f"an identical request started this run {age} s ago, so no new run was paid for; "
                                "for another one pass new_run=true (or a new idempotency_key)")
    elif start.estimate.usd is not None:
        facts |= start.estimate.details()
    if start.details.get("model"):
        facts["model"] = start.details["model"]
    if start.outcome == "started" and start.note:  # e.g. the ledger could not record it (yet)
        facts["note"] = start.note
    return facts


def pending_row(call: ToolCall, start: PaidStart) -> dict[str, Any] | None:
    """The answer for a start with no run ID to follow; None when there is a run."""
    if start.outcome == "accepted":
        return {"status": "accepted", "run_id": None, "next": (
            "FLORA accepted this start and charged it once, but did not return its run ID; do not start it again. "
            "Its outputs will appear in the FLORA project; list_runs lists it")}
    if start.outcome == "unknown":
        again = (f"Call {start.tool} again with the same items (it never starts a second run)"
                 if start.tool == "start_generations" else
                 f"Call {start.tool} again with idempotency_key={start.key!r} and the same arguments: it never "
                 "starts a second run")
        return {"status": "unknown", "run_id": None, "next": (
            f"the start may have been accepted and charged: FLORA's answer did not arrive ({start.note}). {again}, "
            "and returns this one's run_id once FLORA confirms it (within 2 hours). list_runs lists it meanwhile")}
    if start.outcome == "expired":
        return {"status": "unknown", "run_id": None, "next": (
            "this start's outcome was never confirmed and FLORA may have forgotten its idempotency key (over 2 "
            "hours ago), so resending it could charge again. It may have been charged: check the project in FLORA. "
            "To start anew, call again with new_run=true (without this idempotency_key)")}
    return None


async def answer(call: ToolCall, start: PaidStart, wait_seconds: float | None) -> ToolResult:
    """Follow one paid start within the wait budget and describe it."""
    row = pending_row(call, start)
    if row is not None:
        return ToolResult(row | start_facts(start))
    assert start.run_id is not None
    estimated = call.user_state.estimates.get(start.run_id) or start.details.get("estimated_seconds")
    [run] = await follow(call, [start.run_id], wait_budget(call, wait_seconds), estimated)
    if isinstance(run, FloraError):
        row, blocks = unknown_status_row(start.run_id, run), []
    else:
        row, blocks = await describe_run(call, run)
    return ToolResult(row | start_facts(start), content=blocks)
