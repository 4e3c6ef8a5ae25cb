"""Cost estimates in USD that tell the truth: scaled by the params that multiply cost, and by what
FLORA actually charged for this model before (learned in the ledger).

A model's `estimated_credits` is for one default output. FLORA's own guidance reports charges several
times above quotes, so the estimate is corrected by the model's charged ÷ estimated ratio from
settled runs, and the budget reserves a margin above it until that ratio is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..ledger import Calibration, LedgerUnavailable
from .session import ToolCall

if TYPE_CHECKING:
    from ..models import Model

# How much the budget holds back above the estimate: more while we have not seen this model's charges.
UNCALIBRATED_MARGIN = 1.5
CALIBRATED_MARGIN = 1.1


@dataclass(frozen=True)
class Estimate:
    usd: float | None  # what we expect FLORA to charge; None when FLORA gives no estimate
    reserve_usd: float  # what the budget holds back until the real charge is known
    basis: str  # how it was reached, in words an agent can repeat to a user
    calibration: float = 1.0  # the learned charged ÷ estimated ratio applied

    def details(self) -> dict[str, Any]:
        return {"estimated_usd": self.usd, "estimate_basis": self.basis}


UNKNOWN = Estimate(None, 0.0, "FLORA gives no estimate for it")


def param_multiplier(model: Model, params: dict[str, Any] | None) -> tuple[float, list[str]]:
    """How many default outputs' worth a request asks for, from the params that multiply cost:
    a count of outputs, a duration above the default, a resolution above the lowest option."""
    params = params or {}
    factor, words = 1.0, []
    for spec in model.params:
        value = params.get(spec.name, spec.default)
        if value is None or isinstance(value, bool):
            continue
        if spec.name in ("num_images", "num_outputs", "n", "count") and isinstance(value, int | float) and value > 1:
            factor *= value
            words.append(f"x{value:g} {spec.name}")
        elif spec.name in ("duration", "duration_seconds") and isinstance(value, int | float):
            default = spec.default if isinstance(spec.default, int | float) and spec.default > 0 else None
            if default and value != default:
                factor *= value / default
                words.append(f"x{value / default:.2g} {spec.name} {value:g}")
        elif spec.name == "resolution" and spec.options:
            values = [o.value for o in spec.options]
            if str(value) in values and values.index(str(value)) > 0:
                step = 2 ** values.index(str(value))  # each step up the list roughly doubles the price
                factor *= step
                words.append(f"x{step} {spec.name} {value}")
    return factor, words


async def estimate(call: ToolCall, model: Model | None, params: dict[str, Any] | None) -> Estimate:
    if model is None:
        return UNKNOWN
    base = model.estimated_credits * call.settings.usd_per_credit
    multiplier, words = param_multiplier(model, params)
    try:
        learned = await call.ledger.calibration(call.user_id, model.model_id)
    except LedgerUnavailable:  # read-only tools keep working; a paid start is refused at its reservation
        learned = Calibration()
    ratio, runs = learned.ratio, learned.runs
    usd = round(base * multiplier * ratio, 4)
    basis = f"{model.estimated_credits} credits" + "".join(f" {w}" for w in words)
    if runs:
        basis += f" x{ratio:.2f} (charged/estimated over {runs} settled run{'s' if runs > 1 else ''})"
    margin = CALIBRATED_MARGIN if runs else UNCALIBRATED_MARGIN
    # The learned ratio (this account's) covers every parameter mix, so it can undershoot a particular
    # request: the budget never holds back less than the catalogue's own estimate with the margin.
    reserve = max(usd, base * multiplier) * margin
    return Estimate(usd, round(reserve, 4), basis, ratio)


def fixed(usd: float | None, what: str) -> Estimate:
    """A price FLORA states up front (actions)."""
    if usd is None:
        return UNKNOWN
    return Estimate(usd, usd, f"{what} price")
