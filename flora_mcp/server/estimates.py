"""Cost estimates in USD an agent can plan with: scaled by the params that multiply cost, corrected
by what FLORA actually charged before (learned in the ledger), and bounded above.

A model's `estimated_credits` is for one default output, and FLORA's own guidance reports charges
several times above quotes. So every estimate has two figures: `estimated_usd`, the expected charge,
and `estimated_usd_max`, the bound the budget holds back for the start and the one to plan with.
Until this model has settled runs (`calibrated: false`) the bound is 1.5x the catalogue's figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..ledger import Calibration, LedgerUnavailable
from .toolcall import ToolCall

if TYPE_CHECKING:
    from ..models import Model

# How far above the expected charge the bound (and the budget's hold) goes: more while this model's
# charges are unknown, or known only from the account's other models.
UNCALIBRATED_MARGIN = 1.5
CALIBRATED_MARGIN = 1.1

async def learned_calibration(call: ToolCall, model_id: str) -> Calibration:
    """This account's calibration for the model (or its other models before this one has history)."""
    try:
        return await call.ledger.calibration(call.user_id, model_id)
    except LedgerUnavailable:  # read-only tools keep working; a paid start is refused at its reservation
        return Calibration()


@dataclass(frozen=True)
class Estimate:
    usd: float | None  # what we expect FLORA to charge; None when FLORA gives no estimate
    reserve_usd: float  # the bound: what the budget holds back until the real charge is known
    basis: str  # how it was reached, in words an agent can repeat to a user
    calibration: float = 1.0  # the learned charged ÷ estimated ratio applied
    calibrated: bool | None = None  # learned from this model's charges; None for a price FLORA states

    def details(self) -> dict[str, Any]:
        """What an agent is shown before (and with) a start: both figures, and how sure they are."""
        if self.usd is None:
            return {"estimated_usd": None, "estimate_basis": self.basis}
        shown: dict[str, Any] = {"estimated_usd": self.usd, "estimated_usd_max": self.reserve_usd}
        if self.calibrated is not None:
            shown["calibrated"] = self.calibrated
        return shown | {"estimate_basis": self.basis}


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
    multiplier, words = param_multiplier(model, params)
    base = model.estimated_credits * call.settings.usd_per_credit * multiplier
    learned = await learned_calibration(call, model.model_id)
    usd = round(base * learned.ratio, 4)
    basis = f"{model.estimated_credits} credits" + "".join(f" {w}" for w in words)
    runs = f"{learned.runs} settled run{'s' if learned.runs != 1 else ''}"
    if learned.scope == "model":
        basis += f" x{learned.ratio:.2f} (charged/estimated over this model's {runs})"
    elif learned.scope == "account":
        basis += f" x{learned.ratio:.2f} (charged/estimated over {runs} of your other models)"
    calibrated = learned.scope == "model"
    margin = CALIBRATED_MARGIN if calibrated else UNCALIBRATED_MARGIN
    if not calibrated:
        basis += f"; not yet calibrated: FLORA can charge more than it estimates, so plan with the max ({margin:g}x)"
    # The learned ratio is shared by every parameter mix, so it can undershoot a particular request: the
    # bound never drops below the catalogue's own estimate with the margin.
    bound = round(max(usd, base) * margin, 4)
    return Estimate(usd, bound, basis, learned.ratio, calibrated)


def fixed(usd: float | None, what: str) -> Estimate:
    """A price FLORA states up front (actions)."""
    if usd is None:
        return UNKNOWN
    return Estimate(usd, usd, f"{what} price")


def credits_of(call: ToolCall, usd: float | None) -> float | None:
    """USD back in FLORA's credits, so a dry run's two figures always agree."""
    if usd is None:
        return None
    credits = round(usd / call.settings.usd_per_credit, 2)
    return int(credits) if credits.is_integer() else credits
