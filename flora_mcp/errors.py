"""One exception tree for everything the FLORA API can answer with.

Every error carries the contract's `code`, the HTTP `status`, the envelope's `fields`, and a `hint`
that says what to do next. None of them ever holds the API key: messages are built from the
response body and our own text only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class FloraError(Exception):
    """Base class: any failure talking to FLORA."""

    code: str = "unknown_error"
    hint: str = ""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        fields: list[FieldError] | None = None,
        hint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.status = status
        if code:
            self.code = code
        self.fields = fields or []
        if hint is not None:
            self.hint = hint
        self.retry_after = retry_after
        self.may_have_started = False  # a POST's outcome is unknown: FLORA may have accepted (and charged) it
        super().__init__(self.describe())

    def describe(self) -> str:
        text = self.message
        if self.fields:
            text += " (" + "; ".join(f"{f.field}: {f.message}" for f in self.fields) + ")"
        if self.hint:
            text += f". {self.hint}"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, message={self.message!r})"


class ConfigurationError(FloraError):
    """The server is not set up to reach FLORA (no key, bad base URL)."""

    code = "not_configured"


class FloraConnectionError(FloraError):
    """FLORA could not be reached, even after retries."""

    code = "connection_error"
    hint = "FLORA could not be reached; check the network or FLORA_BASE_URL and try again"


class BadRequestError(FloraError):
    code = "input_validation_error"
    hint = "Fix the fields named above and call again"


class AuthenticationError(FloraError):
    code = "unauthorized"
    hint = "Set FLORA_API_KEY to a valid key (it starts with sk_live_), or run with --sandbox to try without one"


class InsufficientCreditsError(FloraError):
    code = "insufficient_credits"
    hint = "The workspace is out of credits; add credits in FLORA or pick a cheaper model (see list_models)"


class PermissionDeniedError(FloraError):
    code = "forbidden"
    hint = "This key has no access to that workspace or project; use IDs from list_workspaces / list_projects"


class NotFoundError(FloraError):
    code = "not_found"
    hint = "Check the ID: workspaces come from list_workspaces, projects from list_projects, runs from start_generation"


class IdempotencyConflictError(FloraError):
    code = "idempotency_duplicate"
    hint = ("FLORA has seen this idempotency_key before (keys are remembered for up to 24 hours) and did not "
            "start a new run. list_runs shows the runs started through this server; for a deliberately new run, "
            "choose a new idempotency_key")


class AcceptedRunLostError(IdempotencyConflictError):
    """A retried start met 409: the first attempt was accepted, its answer was lost.

    Not a failed run. Exactly one run was started and charged; FLORA does not return its ID on the
    duplicate, so the caller must not start it again.
    """

    def __init__(self, idempotency_key: str) -> None:
        self.idempotency_key = idempotency_key
        super().__init__(
            "The start was accepted by FLORA on an earlier attempt whose answer was lost in transit; "
            "it was started and charged once, not twice",
            status=409,
            hint="Do not start it again; its outputs will appear in the FLORA project",
        )


class RateLimitError(FloraError):
    code = "rate_limited"
    hint = "FLORA is rate limiting this key; wait and try again"


class ServerError(FloraError):
    code = "unknown_error"
    hint = "FLORA had an internal error; try again shortly"


_BY_STATUS: dict[int, type[FloraError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: IdempotencyConflictError,
    422: IdempotencyConflictError,  # FLORA's docs: idempotency_conflict, the key was used for another body
    429: RateLimitError,
}


def error_for_status(
    status: int,
    code: str | None,
    message: str,
    fields: list[FieldError] | None = None,
    retry_after: float | None = None,
) -> FloraError:
    """The typed error for an HTTP status and the envelope's code."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else FloraError)
    return cls(message, status=status, code=code, fields=fields, retry_after=retry_after)
