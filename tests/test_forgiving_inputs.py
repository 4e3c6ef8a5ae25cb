"""Inputs one step from right (issue 23): harmless noise is accepted, and the schema every client sees
accepts what the server accepts."""

from __future__ import annotations

import json

import pytest
from mcp.client import Client
from pydantic import ValidationError

from flora_mcp.server import all_tools, create_server
from tests.helpers import call, first_ids, settings, text_of


async def _ids(client) -> dict:
    workspace_id, project_id = await first_ids(client)
    return {"workspace_id": workspace_id, "project_id": project_id}


def test_every_optional_field_takes_null():
    """mcp-use sends null for an optional field it leaves out (params: null among them)."""
    for spec in all_tools():
        for name, field in spec.request.model_fields.items():
            if field.is_required():
                continue
            try:
                spec.request.model_validate({name: None})
            except ValidationError as exc:
                refused = [e for e in exc.errors() if e["loc"][:1] == (name,)]
                assert not refused, f"{spec.name}.{name}: null refused: {refused[0]['msg']}"


async def test_no_schema_writes_a_type_list():
    """fast-agent's Gemini converter rejects "type": [X, "null"]; anyOf [X, null] converts everywhere."""
    async with Client(create_server(settings(sandbox=True))) as client:
        tools = (await client.list_tools()).tools

    def walk(node, path):
        if isinstance(node, dict):
            assert not isinstance(node.get("type"), list), path
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}[{index}]")

    for tool in tools:
        walk(tool.input_schema, tool.name)


async def test_the_schema_accepts_a_pasted_output_object():
    """run_action says 'pass a run's output object as is': its type (imageUrl) is in the published enum."""
    async with Client(create_server(settings(sandbox=True))) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    item = tools["run_action"].input_schema["properties"]["inputs"]["items"]
    assert {"imageUrl", "videoUrl", "audioUrl", "image"} <= set(item["properties"]["type"]["enum"])


async def test_a_quoted_run_id_works_and_never_gets_a_doubled_prefix(make_session):
    async with make_session() as client:
        ids = await _ids(client)
        _, run = await call(client, "start_generation", {"type": "image", "prompt": "a mug",
                                                         "model": "t2i-flux-2-schnell", **ids})
        result, again = await call(client, "get_run", {"run_id": f' "{run["run_id"]}" '})
        listed, _ = await call(client, "get_run", {"run_id": [f"'{run['run_id']}'"]})
        wrong, _ = await call(client, "get_run", {"run_id": '"the mug run"'})
    assert not result.is_error and again["run_id"] == run["run_id"] and again["status"] == "completed"
    assert not listed.is_error, text_of(listed)
    assert wrong.is_error and 'run_"' not in text_of(wrong) and "run_the" not in text_of(wrong)


@pytest.mark.parametrize(("noisy", "means"), [
    ({"type": " Image ", "model": "t2i-flux-2-pro", "params": {"aspect_ratio": "widescreen"}},
     {"type": "image", "params": {"aspect_ratio": "16:9"}}),
    ({"type": "image", "model": "t2i-flux-2-pro", "params": {"aspect_ratio": "16x9"}},
     {"params": {"aspect_ratio": "16:9"}}),
    ({"type": "image", "model": "t2i-flux-2-pro", "params": {"aspect_ratio": "Square"}},
     {"params": {"aspect_ratio": "1:1"}}),
    ({"type": "audio", "model": "tts-elevenlabs-v3", "params": {"voice": "Roger "}},
     {"params": {"voice": "roger"}}),
    ({"type": "video", "model": "t2v-seedance-1-lite", "params": [{"name": "duration", "value": "5s"}]},
     {"params": {"duration": 5}}),
    ({"type": "image", "model": " 't2i-flux-2-pro' ", "params": None, "previews": "SMALL"},
     {"model": "t2i-flux-2-pro"}),
])
async def test_harmless_noise_is_read_as_meant(make_session, fast_sandbox, noisy, means):
    async with make_session() as client:
        ids = await _ids(client)
        result, data = await call(client, "start_generation", {"prompt": "a mug", **ids, **noisy, "dry_run": True})
    assert not result.is_error, text_of(result)
    for key, value in means.items():
        assert data["request"][key] == value, json.dumps(data["request"])
    assert fast_sandbox.state.charges == []


async def test_a_project_name_resolves_across_the_keys_workspaces(make_session):
    async with make_session() as client:
        _, spaces = await call(client, "list_workspaces")
        second = spaces["workspaces"][1]["workspace_id"]
        _, projects = await call(client, "list_projects", {"workspace_id": second})
        target = projects["projects"][0]
        shouted = f"  {target['name'].upper()} "
        result, data = await call(client, "start_generation", {"type": "image", "prompt": "a mug",
                                                               "model": "t2i-flux-2-schnell", "project_id": shouted})
        missing, _ = await call(client, "start_generation", {"type": "image", "prompt": "a mug",
                                                             "project_id": "no such project anywhere"})
    assert not result.is_error, text_of(result)
    assert data["project_id"] == target["project_id"] and data["workspace_id"] == second
    assert data["status"] == "completed" and target["project_id"] in data["project_note"]
    assert missing.is_error and "no project is named 'no such project anywhere'" in text_of(missing)


async def test_list_models_folds_the_case_of_its_type(make_session):
    async with make_session() as client:
        result, data = await call(client, "list_models", {"type": "Audio "})
    assert not result.is_error and data["models"] and {m["type"] for m in data["models"]} == {"audio"}
