"""Every tool's input schema converts in the agent frameworks people use, with nothing lost.

openai-agents converts MCP schemas to OpenAI's strict mode and silently falls back to non-strict
for one it cannot convert; Gemini's function declarations reject objects without properties and
`required` names that are not declared. Both converters run here on the real tools/list.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
from mcp.client import Client

from flora_mcp.server import create_server
from tests.helpers import settings


@pytest.fixture
async def tools():
    async with Client(create_server(settings(sandbox=True))) as client:
        return (await client.list_tools()).tools


def _nullable(schema: dict[str, Any]) -> bool:
    kinds = schema.get("type")
    return (isinstance(kinds, list) and "null" in kinds) or {"type": "null"} in schema.get("anyOf", [])


def _objects(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every object node of a JSON schema with its path."""
    is_object = schema.get("type") == "object" or "properties" in schema or "required" in schema
    found = [(path or "<root>", schema)] if is_object else []
    for name, child in schema.get("properties", {}).items():
        found += _objects(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        found += _objects(schema["items"], f"{path}[]")
    for index, branch in enumerate(schema.get("anyOf", [])):
        found += _objects(branch, f"{path}|{index}")
    return found


def test_openai_agents_converts_every_tool_strictly_and_keeps_every_field(tools):
    from agents.mcp import MCPServerStdio, MCPUtil

    server = MCPServerStdio(params={"command": sys.executable, "args": ["-m", "flora_mcp", "--sandbox"]})  # not started
    for tool in tools:
        converted = MCPUtil.to_function_tool(tool, server, convert_schemas_to_strict=True)
        assert converted.strict_json_schema, f"{tool.name}: fell back to non-strict"
        strict = dict(_objects(converted.params_json_schema))
        for path, original in _objects(tool.input_schema):
            assert set(strict[path]["properties"]) == set(original.get("properties", {})), f"{tool.name} {path}"
            # strict mode requires every property: an optional one must still be able to say "not given"
            for name, prop in original.get("properties", {}).items():
                if name not in original.get("required", []):
                    assert _nullable(prop) or prop.get("type") == "array", f"{tool.name} {path}.{name} is not nullable"


def _gemini_objects(schema: Any, path: str = "") -> list[tuple[str, Any]]:
    found = [(path or "<root>", schema)] if schema.type is not None and schema.type.name == "OBJECT" else []
    for name, child in (schema.properties or {}).items():
        found += _gemini_objects(child, f"{path}.{name}")
    if schema.items is not None:
        found += _gemini_objects(schema.items, f"{path}[]")
    for index, branch in enumerate(schema.any_of or []):
        found += _gemini_objects(branch, f"{path}|{index}")
    return found


def test_gemini_function_declarations_keep_every_field(tools):
    # The conversion google-genai applies when an MCP session is passed as a tool.
    from google.genai._mcp_utils import mcp_to_gemini_tool

    for tool in tools:
        [declaration] = mcp_to_gemini_tool(tool).function_declarations
        assert declaration.name == tool.name and declaration.parameters is not None
        converted = dict(_gemini_objects(declaration.parameters))
        originals = dict(_objects(tool.input_schema))
        # Gemini's own nullable handling may nest a branch; match objects by their property names.
        by_fields = {frozenset(c.properties or {}): (p, c) for p, c in converted.items()}
        for path, original in originals.items():
            assert original.get("properties"), f"{tool.name} {path}: an object with no properties is rejected by Gemini"
            assert set(original.get("required", [])) <= set(original["properties"]), f"{tool.name} {path}: undeclared required"
            assert frozenset(original["properties"]) in by_fields, f"{tool.name} {path}: fields lost in conversion"
        for path, schema in converted.items():
            assert schema.properties, f"{tool.name} {path}: empty object after conversion"
            assert set(schema.required or []) <= set(schema.properties), f"{tool.name} {path}"


async def test_strict_style_arguments_are_accepted(make_session):
    """What a strict client sends: every field present, null for the ones it leaves out, params as text."""
    async with make_session() as client:
        ws = (await client.call_tool("list_workspaces", {"query": None})).structured_content["workspaces"][0]
        result = await client.call_tool("start_generation", {
            "type": "image", "prompt": "a kite", "model": "t2i-flux-2-schnell", "workspace_id": ws["workspace_id"],
            "project_id": None, "params": [{"name": "num_images", "value": "2"}, {"name": "aspect_ratio", "value": "1:1"}],
            "idempotency_key": None, "wait_seconds": None, "dry_run": True, "previews": None})
    # project_id: null still means "not given" (the workspace has several, so it asks for one)
    assert result.is_error and "project_id is required" in result.content[0].text
