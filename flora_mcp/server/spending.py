"""Spending guards, checked before any paid start: a per-start limit, and starts whose cost is unknown
under a limit or budget. Where the client supports elicitation the user is asked instead of refused.

The budget itself is enforced by the ledger, atomically, when the start is reserved (paid.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcp_types import ElicitRequest, ElicitRequestFormParams, ElicitResult, InputRequiredResult
from pydantic import BaseModel, Field

from ..config import budget_usd
from .toolcall import ToolCall
from .tooling import NOTHING_STARTED, NeedsInput, ToolInputError

if TYPE_CHECKING:
    from .estimates import Estimate

MODERN_PROTOCOL = "2026-07-28"  # first protocol revision where servers ask for input via input_required
CONFIRM_KEY = "flora_confirm_spend"


class _ConfirmSpend(BaseModel):
    confirm: bool = Field(description="Start it anyway?")


def check_max_usd(estimates: list[Estimate], max_usd: float | None, what: str) -> None:
    """The agent's own limit (`max_usd`: one start, or a batch's total) against the estimates' upper
    bound. No confirmation: the agent set it, so going over it is always a refusal."""
    if max_usd is None:
        return
    if any(e.usd is None for e in estimates):
        raise ToolInputError(f"{what} not started: FLORA gives no cost estimate without a model, so max_usd "
                             f"${max_usd:g} cannot be held. {NOTHING_STARTED}. Name a model (list_models)")
    bound = round(sum(e.reserve_usd for e in estimates), 4)
    if bound > max_usd:
        expected = round(sum(e.usd or 0.0 for e in estimates), 4)
        basis = estimates[0].basis if len(estimates) == 1 else f"{len(estimates)} starts"
        raise ToolInputError(f"{what} not started: it may cost up to ${bound:g} (expected ${expected:g}; {basis}), "
                             f"above max_usd ${max_usd:g}. {NOTHING_STARTED}. Choose a cheaper model, fewer or "
                             "smaller outputs, or a higher max_usd")


async def guard_cost(call: ToolCall, estimates: list[Estimate], what: str) -> None:
    """Refuse (or, where the client can ask its user, confirm) starts the limits cannot vouch for.

    FLORA_MAX_COST_PER_RUN applies to each start's upper bound on its own; a start with no estimate
    cannot be checked against it or against the budget, so it needs the user's OK.
    """
    limit, budget = call.settings.max_cost_per_run, budget_usd(call.settings)
    reasons = []
    if limit is not None:
        over = [e for e in estimates if e.usd is not None and e.reserve_usd > limit]
        if over:
            worst = max(over, key=lambda e: e.reserve_usd)
            count = f"{len(over)} of {len(estimates)} starts are" if len(estimates) > 1 else "its estimate is"
            reasons.append(f"{count} above FLORA_MAX_COST_PER_RUN ${limit:g} (up to ${worst.reserve_usd:.2f}, "
                           f"expected ${worst.usd:.2f}: {worst.basis})")
    unknown = [e for e in estimates if e.usd is None]
    if unknown and (limit is not None or budget is not None):
        which = "FLORA_MAX_COST_PER_RUN" if budget is None else "the budget"
        reasons.append(f"FLORA gives no cost estimate for {'it' if len(estimates) == 1 else f'{len(unknown)} of them'}"
                       f" (a technique, or no model named), so it cannot be checked against {which}")
    if not reasons:
        return
    message = f"{what} not started: " + "; ".join(reasons)
    if await _user_confirms(call, message):
        return
    raise ToolInputError(f"{message}. {NOTHING_STARTED}. Name a model (list_models shows credits), choose a cheaper "
                         "one, or ask the user to confirm or raise the limit")


async def _user_confirms(call: ToolCall, message: str) -> bool:
    """Ask the user through MCP elicitation, where the client offers it.

    Handshake-era protocols (≤ 2025-11-25) get an elicitation/create request mid-call. From
    2026-07-28 there is no mid-call back-channel: the call answers `input_required` with the
    question, and the client retries it with the user's answer. Nothing has been started by then,
    so the retry is safe.
    """
    ctx = call.ctx
    caps = ctx.client_capabilities if ctx is not None else None
    if ctx is None or caps is None or caps.elicitation is None:
        return False
    question = message.replace(" not started:", " needs your OK:")
    if (ctx.protocol_version or "") >= MODERN_PROTOCOL:
        answer = (ctx.input_responses or {}).get(CONFIRM_KEY)
        if answer is None:
            schema = _ConfirmSpend.model_json_schema()
            schema.pop("title", None)
            raise NeedsInput(InputRequiredResult(input_requests={CONFIRM_KEY: ElicitRequest(
                params=ElicitRequestFormParams(message=question, requested_schema=schema))}))
        return isinstance(answer, ElicitResult) and answer.action == "accept" and (answer.content or {}).get("confirm") is True
    try:
        result = await ctx.elicit(question, _ConfirmSpend)
    except Exception:
        return False
    return result.action == "accept" and result.data.confirm


def over_budget_message(what: str, spent: float, held: float, asked: float, budget: float, hours: float) -> str:
    return (f"{what} not started: it would pass the ${budget:g} budget for the last {hours:g} h "
            f"(${spent:.2f} charged, ${held:.2f} held for unfinished runs, this needs ${asked:.2f}). "
            f"{NOTHING_STARTED}. list_runs shows what was spent; ask the user to raise FLORA_BUDGET_USD or wait")
