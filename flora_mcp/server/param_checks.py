"""Checking `params` against what FLORA declares (a model's params, an action's params and inputs)
before any money is spent.

FLORA accepts and bills unknown or out-of-range params without an error, so this check is the
only thing standing between a typo and a paid run.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .arguments import InputItem, typed

if TYPE_CHECKING:
    from ..models import Action, ActionParam, Model, ModelParam


def _declared(params: dict[str, Any], declared: dict[str, Any], owner: str, allowed: str,
              problems: list[str]) -> Iterator[tuple[str, Any, Any]]:
    """Each given param that `owner` declares, as (name, spec, value), its value typed in `params`
    (strict clients send every value as text). An undeclared one is a problem naming the closest."""
    for name, value in list(params.items()):
        spec = declared.get(name)
        if spec is None:
            close = difflib.get_close_matches(name, declared, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            problems.append(f"params.{name}: {owner} has no such param.{hint} Allowed: {allowed or 'none'}")
            continue
        params[name] = typed(spec.type, value)
        yield name, spec, params[name]


def _type_ok(spec: ModelParam, value: Any) -> bool:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    match spec.type:
        case "string":
            return isinstance(value, str)
        case "string[]":
            return isinstance(value, list) and all(isinstance(v, str) for v in value)
        case "bool":
            return isinstance(value, bool)
        case "int" | "seed":
            return is_int
        case "int?":
            return value is None or is_int
        case "float":  # NaN passes every range check and is not JSON: never a number here
            return is_int or (isinstance(value, float) and math.isfinite(value))
        case "dict":
            return isinstance(value, dict)
    return True


_TYPE_WORDS = {"string": "a string", "string[]": "a list of strings", "bool": "true or false", "int": "an integer",
               "int?": "an integer or null", "seed": "an integer seed", "float": "a number", "dict": "an object"}


def describe_param(spec: ModelParam) -> str:
    """Compact: name, then allowed values or range; * marks required."""
    text = spec.name + ("*" if spec.required else "")
    if spec.options:  # FLORA's word for each option where it gives one (a voice's "calm, deep")
        return f"{text}({'|'.join(o.value + (f': {o.description[:40]}' if o.description else '') for o in spec.options)})"
    if spec.min is not None and spec.max is not None and spec.type != "seed":
        lo, hi = (int(v) if float(v).is_integer() else v for v in (spec.min, spec.max))
        return f"{text}({lo}-{hi})"
    if spec.type not in ("string", "seed"):
        return f"{text}:{spec.type}"
    return text


# Words for an aspect ratio that name exactly one shape; landscape/portrait count only when the model
# offers a single option of that orientation.
_RATIO_WORDS = {"widescreen": "16:9", "wide": "16:9", "square": "1:1", "ultrawide": "21:9", "cinematic": "21:9"}
_SECONDS = re.compile(r"^(\d+(?:\.\d+)?)\s*(?:s|sec|secs|second|seconds)$")


def _same_option(spec: ModelParam, value: Any) -> Any:
    """`value` with each item that matches exactly one option case-insensitively ('Roger ') spelled as
    the option is ('roger'); for an aspect ratio, '16x9' or 'widescreen' as '16:9' when that is an
    option; anything else unchanged."""
    values = [o.value for o in spec.options or []]

    def fix(item: Any) -> Any:
        if not isinstance(item, str):
            return item
        text = item.strip().lower()
        same = [v for v in values if v.lower() == text]
        if len(same) == 1:
            return same[0]
        if "ratio" in spec.name:
            return _ratio(text, values) or item
        return item
    return [fix(v) for v in value] if isinstance(value, list) else fix(value)


def _ratio(text: str, values: list[str]) -> str | None:
    spelled = re.sub(r"\s*[x/×]\s*|\s*:\s*", ":", text)
    if spelled in values:
        return spelled
    if _RATIO_WORDS.get(text) in values:
        return _RATIO_WORDS[text]
    shapes = {"landscape": lambda w, h: w > h, "horizontal": lambda w, h: w > h,
              "portrait": lambda w, h: h > w, "vertical": lambda w, h: h > w}
    if text in shapes:
        fitting = [v for v in values if re.fullmatch(r"\d+:\d+", v) and shapes[text](*map(float, v.split(":")))]
        return fitting[0] if len(fitting) == 1 else None
    return None


def _as_seconds(spec: ModelParam, value: Any) -> Any:
    """'5s' or '5 seconds' for a duration is 5."""
    if isinstance(value, str) and ("duration" in spec.name or "seconds" in spec.name):
        match = _SECONDS.match(value.strip().lower())
        if match:
            number = float(match.group(1))
            return int(number) if number.is_integer() and spec.type in ("int", "int?", "seed") else number
    return value


def check_params(model: Model, params: dict[str, Any] | None) -> list[str]:
    """Problems with `params` for `model`, each naming the param and what is allowed. Empty if fine.

    Unambiguous spellings are corrected in place (case of an option, an object sent as JSON text)."""
    params = params or {}
    declared = {p.name: p for p in model.params}
    problems: list[str] = []
    allowed = ", ".join(describe_param(p) for p in model.params)
    for name, spec, value in _declared(params, declared, model.model_id, allowed, problems):
        value = params[name] = _as_seconds(spec, value)
        if spec.options:
            value = params[name] = _same_option(spec, value)
        if not _type_ok(spec, value):
            problems.append(f"params.{name}: must be {_TYPE_WORDS.get(spec.type, spec.type)}, got {value!r}")
            continue
        if spec.options:
            allowed_values = [o.value for o in spec.options]
            for item in value if isinstance(value, list) else [value]:
                if item not in allowed_values:
                    by_label = [o.value for o in spec.options if o.label and o.label.lower() == str(item).lower()]
                    close = by_label or difflib.get_close_matches(str(item), allowed_values, n=1, cutoff=0.5)
                    hint = f" Did you mean {close[0]!r}?" if close else ""
                    problems.append(f"params.{name}: {item!r} is not allowed.{hint} Allowed: {', '.join(allowed_values)}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
                problems.append(f"params.{name}: {value} is outside {spec.min:g}-{spec.max:g}"
                                if spec.min is not None and spec.max is not None
                                else f"params.{name}: {value} is out of range")
        if spec.type == "dict" and spec.properties and isinstance(value, dict):
            for key, item in value.items():
                bounds = spec.properties.get(key)
                if bounds is None:
                    problems.append(f"params.{name}.{key}: unknown; allowed: {', '.join(spec.properties)}")
                elif not isinstance(item, int | float) or not bounds.min <= item <= bounds.max:
                    problems.append(f"params.{name}.{key}: must be a number in {bounds.min:g}-{bounds.max:g}")
    for spec in model.params:
        if spec.required and spec.name not in params:
            problems.append(f"params.{spec.name}: required by {model.model_id} ({spec.description or spec.label or spec.type})")
    return problems


# --- actions -------------------------------------------------------------------------------------
def describe_action_param(p: ActionParam) -> str:
    """Compact, as describe_param: key, then allowed values or range; * marks required."""
    text = p.key + ("*" if p.required else "")
    if p.available_values:
        return f"{text}({'|'.join(str(v) for v in p.available_values)})"
    if p.min is not None and p.max is not None:
        return f"{text}({p.min:g}-{p.max:g})"
    return f"{text}:{p.type}"


def check_action(action: Action, inputs: list[InputItem], params: dict[str, Any] | None) -> list[str]:
    """Problems with inputs/params for this action, each naming what is allowed."""
    problems: list[str] = []
    params = params or {}
    declared = {p.key: p for p in action.params}
    allowed = ", ".join(describe_action_param(p) for p in action.params)
    for key, spec, value in _declared(params, declared, action.action_id, allowed, problems):
        if spec.available_values and value not in spec.available_values and str(value) not in map(str, spec.available_values):
            same = [v for v in spec.available_values if str(v).lower() == str(value).strip().lower()]
            if len(same) == 1:  # 'Horizontal' for 'horizontal': unambiguous
                params[key] = same[0]
                continue
            problems.append(f"params.{key}: {value!r} is not allowed. Allowed: "
                            + ", ".join(str(v) for v in spec.available_values))
        elif spec.type == "number":
            if not isinstance(value, int | float) or isinstance(value, bool):
                problems.append(f"params.{key}: must be a number, got {value!r}")
            elif (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
                problems.append(f"params.{key}: {value} is outside {spec.min:g}-{spec.max:g}")
        elif spec.type == "boolean" and not isinstance(value, bool):
            problems.append(f"params.{key}: must be true or false")
    for spec in action.params:
        if spec.required and spec.key not in params:
            problems.append(f"params.{spec.key}: required by {action.action_id}")
    given = {i.type for i in inputs}
    for slot in action.inputs:
        if slot.required and slot.type not in given:
            problems.append(f"inputs: {action.action_id} needs a {slot.type} input ({slot.name})")
    for index, item in enumerate(inputs):
        if item.type == "text" and item.text is None:
            problems.append(f"inputs.{index}: a text input needs text")
        elif item.type != "text" and not (item.url and item.url.startswith(("http://", "https://"))):
            problems.append(f"inputs.{index}: a {item.type} input needs an http(s) url (a run output or upload_asset)")
    return problems
