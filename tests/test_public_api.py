"""The public surface: what `import flora_mcp` offers, and that offering it costs nothing at import."""

from __future__ import annotations

import subprocess
import sys

import pytest

import flora_mcp

PUBLIC = {
    "__version__", "FloraClient", "RetryPolicy", "Settings", "SettingsError", "load_settings", "create_server",
    "build_client", "open_ledger", "FloraError", "ConfigurationError", "FloraConnectionError", "BadRequestError",
    "AuthenticationError", "InsufficientCreditsError", "PermissionDeniedError", "NotFoundError",
    "IdempotencyConflictError", "AcceptedRunLostError", "RateLimitError", "ServerError",
}


def test_all_names_the_public_surface():
    assert set(flora_mcp.__all__) == PUBLIC
    assert sorted(flora_mcp.__all__) == flora_mcp.__all__  # kept sorted, so a diff shows what changed
    assert PUBLIC <= set(dir(flora_mcp))


@pytest.mark.parametrize("name", sorted(PUBLIC - {"__version__"}))
def test_each_public_name_is_the_defining_modules_object(name):
    import importlib

    value = getattr(flora_mcp, name)
    assert value is getattr(importlib.import_module(value.__module__), name)
    assert value.__module__.startswith("flora_mcp.")


def test_errors_share_one_root():
    errors = [getattr(flora_mcp, n) for n in flora_mcp.__all__ if n.endswith("Error") and n != "SettingsError"]
    assert len(errors) == 12 and all(issubclass(e, flora_mcp.FloraError) for e in errors)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'FloraClinet'"):
        flora_mcp.FloraClinet  # noqa: B018


@pytest.mark.slow
def test_import_flora_mcp_loads_nothing_else():
    """stdio start-up time is a product target: the names load their modules on first use."""
    code = "import sys, flora_mcp; print(sorted(m for m in sys.modules if m.startswith(('flora_mcp', 'mcp', " \
           "'pydantic', 'httpx2', 'typing'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['flora_mcp', 'flora_mcp._version']"  # the version is one constant
