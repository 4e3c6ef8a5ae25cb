"""Where a FloraClient comes from: FLORA itself, or the embedded sandbox in-process.

The one module that knows the sandbox is there. The server, the transports and the demo ask
build_client for a client and speak to a FloraClient either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .client import FloraClient
    from .config import Settings

__all__ = ["build_client"]


def build_client(settings: Settings, api_key: str | None, *, per_request_keys: bool = False) -> FloraClient:
    """The FLORA client these settings describe: FLORA itself, or the embedded sandbox in-process.

    The one place that chooses; everything after it speaks to a FloraClient either way. With
    `per_request_keys` (hosted mode) the client holds no key: each user's view brings theirs.
    """
    from .client import FloraClient  # on first use: keeps the API models off the start-up path
    from .retry import RetryPolicy

    retry = RetryPolicy(max_retries=settings.max_retries)
    if per_request_keys:
        api_key = None
    if settings.sandbox:
        from .sandbox import SANDBOX_API_KEY, Sandbox  # only in sandbox mode

        if not per_request_keys and not (api_key or "").startswith("sk_sandbox_"):
            api_key = SANDBOX_API_KEY  # a live key in the environment is never handed to the sandbox
        return Sandbox(speed=settings.sandbox_speed).client(api_key, timeout=settings.timeout, retry=retry)
    return FloraClient(api_key, base_url=settings.base_url, timeout=settings.timeout, retry=retry)
