"""Spending guards: a per-run limit and a session budget, checked before any paid start.

Where the client supports elicitation the user is asked instead of refused.
"""

from __future__ import annotations

from mcp_types import ElicitRequest, ElicitRequestFormParams, ElicitResult, InputRequiredResult
from pydantic import BaseModel, Field

from ._registry import NeedsInput, ToolInputError
from .session import ToolCall

MODERN_PROTOCOL = "2026-07-28"  # first protocol revision where servers ask for input via input_required
CONFIRM_KEY = "flora_confirm_spend"


class _ConfirmSpend(BaseModel):
    confirm: bool = Field(description="Start it anyway?")


async def guard_cost(call: ToolCall, estimate_usd: float | None, what: str) -> None:
    """Refuse (or, where the client can ask its user, confirm) a start above the configured limits."""
    limit, budget = call.settings.max_cost_per_run, call.settings.session_budget
    reasons = []
    if limit is not None and (estimate_usd is None or estimate_usd > limit):
        reasons.append(f"its estimate {_usd(estimate_usd)} is above FLORA_MAX_COST_PER_RUN ${limit:g}"
                       if estimate_usd is not None else "FLORA gives no estimate for it (no model named, or a "
                       f"technique), so it cannot be checked against FLORA_MAX_COST_PER_RUN ${limit:g}")
    if budget is not None and call.user.spent_usd + (estimate_usd or 0) > budget:
        reasons.append(f"${call.user.spent_usd:.2f} of the ${budget:g} session budget is spent and this would "
                       f"add {_usd(estimate_usd)}")
    if not reasons:
        return
    message = f"{what} not started: " + "; ".join(reasons)
    if await _user_confirms(call, message):
        return
    raise ToolInputError(message + ". Choose a cheaper model (list_models shows credits) or ask the user to raise "
                         "the limit")


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


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.2f}"
