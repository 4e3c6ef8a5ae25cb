"""The MCP SDK internals flora-mcp leans on, each checked by name, so a new SDK release that moves one
fails here with a message saying what moved, not somewhere deep in a tool call.

Every private SDK attribute is read in one module, flora_mcp/sdk_internals.py (the fast path's own pins
are in tests/test_fastpath.py). pyproject.toml allows `mcp>=2.3,<2.4` because of these: widen the range
only when this file passes on the new minor release.
"""

from __future__ import annotations

import inspect
import json
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import httpx2
from mcp.client import Client
from mcp.server import MCPServer
from mcp.server.session import ServerSession
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from packaging.specifiers import SpecifierSet

from flora_mcp import sdk_internals
from flora_mcp.sandbox import Sandbox
from flora_mcp.server import create_server
from flora_mcp.server.dispatch import _RawArguments
from flora_mcp.transports.fastpath import StatelessFastPath
from flora_mcp.transports.http import create_app
from tests.helpers import DEMO_KEY, settings

ROOT = Path(__file__).parent.parent


def test_the_installed_sdk_is_inside_the_range_pyproject_allows():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [spec] = [re.sub(r"^mcp\s*", "", d) for d in deps if re.match(r"mcp\s*[<>=!~]", d)]
    assert version("mcp") in SpecifierSet(spec), f"mcp {version('mcp')} is outside {spec}"


def test_low_level_request_table_still_takes_method_params_type_and_handler():
    """sdk_internals.add_request_handler registers logging/setLevel through it (MCPServer has no hook)."""
    server = MCPServer(name="probe")
    lowlevel = getattr(server, "_lowlevel_server", None)
    assert lowlevel is not None, "MCPServer._lowlevel_server is gone: see sdk_internals"
    params = list(inspect.signature(lowlevel.add_request_handler).parameters)
    assert params[:3] == ["method", "params_type", "handler"], f"add_request_handler now takes {params}"


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")  # logging: SEP-2577
async def test_a_handler_added_to_the_request_table_answers_and_declares_logging():
    server = create_server(settings(), client=Sandbox(speed=200).client())
    async with Client(server, mode="legacy") as client:
        assert client.server_capabilities.logging is not None
        await client.set_logging_level("warning")  # raises if the method were unknown


def test_tool_is_still_built_from_these_fields():
    """dispatch.build_tool constructs mcpserver's Tool directly, to publish its own input schema."""
    fields = set(Tool.model_fields)
    used = {"fn", "name", "title", "description", "parameters", "fn_metadata", "is_async", "context_kwarg",
            "annotations"}
    assert used <= fields, f"Tool lost {sorted(used - fields)}"


def test_func_metadata_still_hands_raw_arguments_through_model_dump_one_level():
    """_RawArguments lets every argument through as one dict; our dispatcher validates it with the
    tool's request model (so a wrong value gets advice, not pydantic's error)."""
    assert issubclass(_RawArguments, ArgModelBase)
    meta = FuncMetadata(arg_model=_RawArguments)
    assert meta.validate_arguments({"prompt": "x", "n": 2}) == {"arguments": {"prompt": "x", "n": 2}}
    assert "validate_arguments" in inspect.getsource(Tool.run), "Tool.run no longer asks fn_metadata to validate"


# Each private attribute read by each function in sdk_internals.py.
PRIVATE_READS = {
    "add_request_handler": ["_lowlevel_server"],
    "drop_request_handlers": ["_lowlevel_server", "_request_handlers"],
    "add_request_middleware": ["_lowlevel_server"],
    "add_resource_template": ["_resource_manager", "_templates"],
    "connection_of": ["_connection"],
    "manager_is_running": ["_task_group"],
    "manager_lifespan_state": ["_lifespan_state"],
}


def test_only_sdk_internals_reads_the_sdks_private_attributes():
    """A newcomer upgrading `mcp` reads one module: nothing else names these attributes."""
    names = {name for reads in PRIVATE_READS.values() for name in reads}
    found = [f"{path.relative_to(ROOT)}: {name}" for path in sorted((ROOT / "flora_mcp").rglob("*.py"))
             if path.name != "sdk_internals.py" for name in names
             if re.search(rf"\.{name}\b|[\"']{name}[\"']", path.read_text())]
    assert found == []
    functions = {n for n, f in inspect.getmembers(sdk_internals, inspect.isfunction) if f.__module__ == sdk_internals.__name__}
    assert functions == set(PRIVATE_READS), "a function in sdk_internals.py is not listed in PRIVATE_READS"


def test_the_private_attributes_sdk_internals_reads_are_still_there():
    server = MCPServer(name="probe")
    assert isinstance(server._lowlevel_server._request_handlers, dict), "the low-level request table moved"
    assert isinstance(server._lowlevel_server.middleware, list), "the low-level middleware list moved"
    assert isinstance(server._resource_manager._templates, dict), "the resource manager's templates moved"
    assert "self._connection" in inspect.getsource(ServerSession), "ServerSession no longer keeps _connection"
    manager = inspect.getsource(StreamableHTTPSessionManager)
    for name in ("self._task_group", "self._lifespan_state"):
        assert name in manager, f"StreamableHTTPSessionManager lost {name}"


def test_sdk_internals_drop_and_connection_of_do_what_they_say():
    server = MCPServer(name="probe")
    sdk_internals.drop_request_handlers(server, "prompts/list", "prompts/get", "never/served")
    assert "prompts/list" not in server._lowlevel_server._request_handlers
    plain = object()
    assert sdk_internals.connection_of(plain) is plain  # no private connection: per request, never shared


async def _post_tools_list(fast_path: bool) -> httpx2.Response:
    app = create_app(settings(sandbox=True, fast_path=fast_path), client=Sandbox(speed=200).client())
    mcp_route = next(r for r in app.routes if getattr(r, "path", None) == "/mcp")
    assert isinstance(mcp_route.endpoint, StatelessFastPath) is fast_path
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with app.router.lifespan_context(app), httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as http:
        return await http.post("/mcp", content=json.dumps(body), headers={
            "Authorization": f"Bearer {DEMO_KEY}", "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"})


async def test_flora_fast_path_false_leaves_every_request_to_the_sdks_transport():
    """The fast path answers a plain call as JSON; with the setting off the SDK answers it (as SSE), and
    the tools listed are the same."""
    fast, sdk = await _post_tools_list(True), await _post_tools_list(False)
    assert fast.status_code == sdk.status_code == 200
    assert fast.headers["content-type"] == "application/json"
    assert sdk.headers["content-type"].startswith("text/event-stream")
    sdk_message = next(json.loads(line[5:]) for line in sdk.text.splitlines() if line.startswith("data:") and line[5:].strip())
    names = sorted(t["name"] for t in fast.json()["result"]["tools"])
    assert names == sorted(t["name"] for t in sdk_message["result"]["tools"]) and len(names) > 10
