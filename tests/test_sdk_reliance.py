"""The MCP SDK internals flora-mcp leans on, each checked by name, so a new SDK release that moves one
fails here with a message saying what moved, not somewhere deep in a tool call.

pyproject.toml allows `mcp>=2.3,<2.4` because of these: widen the range only when this file passes on
the new minor release.
"""

from __future__ import annotations

import inspect
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from mcp.client import Client
from mcp.server import MCPServer
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from packaging.specifiers import SpecifierSet

from flora_mcp.sandbox import Sandbox
from flora_mcp.server import create_server
from flora_mcp.server.dispatch import _RawArguments
from tests.helpers import settings

ROOT = Path(__file__).parent.parent


def test_the_installed_sdk_is_inside_the_range_pyproject_allows():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [spec] = [re.sub(r"^mcp\s*", "", d) for d in deps if re.match(r"mcp\s*[<>=!~]", d)]
    assert version("mcp") in SpecifierSet(spec), f"mcp {version('mcp')} is outside {spec}"


def test_low_level_request_table_still_takes_method_params_type_and_handler():
    """flora_mcp/server/__init__.py registers logging/setLevel through it (MCPServer has no hook)."""
    server = MCPServer(name="probe")
    lowlevel = getattr(server, "_lowlevel_server", None)
    assert lowlevel is not None, "MCPServer._lowlevel_server is gone: see _serve_log_levels"
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
