"""flora-mcp: an MCP server for the FLORA creative API.

The public surface, importable from here:

    from flora_mcp import FloraClient, RetryPolicy, create_server, load_settings, open_ledger

- the FLORA client: FloraClient, RetryPolicy, and the error tree rooted at FloraError;
- the server: create_server (an MCPServer with FLORA's tools), build_client (FLORA or the sandbox,
  from the settings), Settings / load_settings / SettingsError, open_ledger (where money is booked).

Kept import-light on purpose: the stdio server's start-up time is part of the product, so each name
loads its module on first use (PEP 562) and `import flora_mcp` imports nothing else.
"""

from ._version import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers know the name)

# name -> the module that defines it
_PUBLIC = {
    "FloraClient": "flora_mcp.client",
    "RetryPolicy": "flora_mcp.retry",
    "FloraError": "flora_mcp.errors",
    "ConfigurationError": "flora_mcp.errors",
    "FloraConnectionError": "flora_mcp.errors",
    "BadRequestError": "flora_mcp.errors",
    "AuthenticationError": "flora_mcp.errors",
    "InsufficientCreditsError": "flora_mcp.errors",
    "PermissionDeniedError": "flora_mcp.errors",
    "NotFoundError": "flora_mcp.errors",
    "IdempotencyConflictError": "flora_mcp.errors",
    "AcceptedRunLostError": "flora_mcp.errors",
    "RateLimitError": "flora_mcp.errors",
    "ServerError": "flora_mcp.errors",
    "Settings": "flora_mcp.config",
    "SettingsError": "flora_mcp.config",
    "load_settings": "flora_mcp.config",
    "create_server": "flora_mcp.server",
    "build_client": "flora_mcp.connect",
    "open_ledger": "flora_mcp.ledger",
}

__all__ = [
    "AcceptedRunLostError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "FloraClient",
    "FloraConnectionError",
    "FloraError",
    "IdempotencyConflictError",
    "InsufficientCreditsError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RetryPolicy",
    "ServerError",
    "Settings",
    "SettingsError",
    "__version__",
    "build_client",
    "create_server",
    "load_settings",
    "open_ledger",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ loads on first use
    from .client import FloraClient
    from .config import Settings, SettingsError, load_settings
    from .connect import build_client
    from .errors import (
        AcceptedRunLostError,
        AuthenticationError,
        BadRequestError,
        ConfigurationError,
        FloraConnectionError,
        FloraError,
        IdempotencyConflictError,
        InsufficientCreditsError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitError,
        ServerError,
    )
    from .ledger import open_ledger
    from .retry import RetryPolicy
    from .server import create_server


def __getattr__(name: str) -> object:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'flora_mcp' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
