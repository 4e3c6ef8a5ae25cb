"""Settings that do not validate, said in one line a person at a terminal can act on:
which variable (or option) was wrong, its value, and what it accepts.

    FLORA_WAIT_SECONDS='abc' is not valid (input should be a valid number): use a number from 0 to 50
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo


@dataclass(frozen=True)
class Problem:
    field: str
    value: str | None  # None: not shown (a secret)
    message: str  # what is wrong and what is allowed


class SettingsError(ValueError):
    def __init__(self, problems: list[Problem], from_environment: set[str], env_prefix: str) -> None:
        self.problems = problems
        self.from_environment = from_environment
        self.env_prefix = env_prefix
        super().__init__(self.describe())

    def describe(self, option_names: dict[str, str] | None = None) -> str:
        """One line. A field from the environment is named by its variable; one given as an option by
        `option_names` (e.g. {"toolsets": "--toolsets"}), else by its own name."""
        parts = []
        for p in self.problems:
            if p.field in self.from_environment:
                name = self.env_prefix + p.field.upper()
            else:
                name = (option_names or {}).get(p.field, p.field)
            parts.append(f"{name}{'' if p.value is None else '=' + repr(p.value)} is not valid{p.message}")
        return "; ".join(parts)


def settings_error(exc: ValidationError, model: type[BaseModel], values: dict[str, object],
                   from_environment: set[str], env_prefix: str) -> SettingsError:
    problems = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else "settings"
        info = model.model_fields.get(field)
        secret = info is not None and "SecretStr" in str(info.annotation)
        value = None if secret or field not in values else _without_credentials(str(values[field]))[:60]
        if error["type"] == "value_error" or info is None:  # our own validators say what is allowed
            message = ": " + _lower_first(error["msg"].removeprefix("Value error, "))
        else:  # pydantic's first clause ("input should be a valid number"), then the field's range
            message = f" ({_lower_first(error['msg'].split(', ')[0])}): use {allowed(info)}"
        problems.append(Problem(field, value, message))
    return SettingsError(problems, from_environment, env_prefix)


def _without_credentials(value: str) -> str:
    """A URL's user and password are never echoed: scheme://user:secret@host -> scheme://…@host."""
    return re.sub(r"//[^/@\s]*@", "//…@", value)


def allowed(info: FieldInfo) -> str:
    """What a field accepts, from its type and bounds: 'a number from 0 to 50', 'true or false', ..."""
    annotation = str(info.annotation)
    if "bool" in annotation:
        return "true or false"
    if "Path" in annotation:
        return "a folder path"
    kind = "a whole number" if "int" in annotation else "a number" if "float" in annotation else "text"
    bound = {attr: getattr(m, attr) for m in info.metadata for attr in ("ge", "gt", "le", "lt")
             if getattr(m, attr, None) is not None}
    if "ge" in bound and "le" in bound:
        return f"{kind} from {bound['ge']:g} to {bound['le']:g}"
    words = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}
    return " ".join([kind, *(f"{words[attr]} {limit:g}" for attr, limit in bound.items())])


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
