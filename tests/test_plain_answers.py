"""Saying plainly what cannot be done (issue 23): no such action, what comes closest by purpose, each
problem said once, and a way to tell FLORA (send_feedback, checked against FLORA's own spec)."""

from __future__ import annotations

import httpx2
import pytest

from flora_mcp.sandbox import SANDBOX_API_KEY
from tests.helpers import call, first_ids, text_of
from tests.test_contract import check, request_schema, response_schema


async def _ids(client) -> dict:
    workspace_id, project_id = await first_ids(client)
    return {"workspace_id": workspace_id, "project_id": project_id}


@pytest.mark.parametrize(("action_id", "says", "never"), [
    ("upscale-image", "no action 'upscale-image' exists, and no action does that; closest by purpose: a larger "
     "image comes from a model", "duplicate-image"),
    ("remove-background", "closest by purpose: an image-to-image model", "rotate-image"),
    ("rotate", "use rotate-image", None),
    ("Rotate_Image", "'Rotate_Image' is spelled 'rotate-image'", None),
    ("make-gif", "no action 'make-gif' exists, and none does gif", "duplicate-image"),
])
async def test_an_unknown_action_says_so_and_what_comes_closest_by_purpose(make_session, fast_sandbox, action_id,
                                                                           says, never):
    async with make_session() as client:
        ids = await _ids(client)
        result, _ = await call(client, "run_action", {"action_id": action_id, **ids,
                                                      "inputs": [{"type": "image", "url": "https://x.example/a.png"}]})
    assert result.is_error and says in text_of(result), text_of(result)
    assert never is None or never not in text_of(result)
    assert fast_sandbox.state.charges == []


async def test_action_params_point_at_list_actions(make_session):
    async with make_session() as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert "list_actions" in tools["run_action"].input_schema["properties"]["params"]["description"]
    assert "list_actions" in tools["create_canvas_action"].input_schema["properties"]["params"]["description"]
    assert "list_models" in tools["start_generation"].input_schema["properties"]["params"]["description"]


async def test_a_composite_refusal_says_each_thing_once(make_session):
    async with make_session() as client:
        ids = await _ids(client)
        batch, _ = await call(client, "start_generations", {**ids, "items": [
            {"type": "image", "prompt": "x", "model": "t2i-flux-2-pro", "params": {"aspect_ratio": "7:3"}},
            {"type": "image", "prompt": "y", "model": "nope"}]})
        union, _ = await call(client, "get_run", {"run_id": "abc123"})
    assert text_of(batch).count("Nothing was started") == 1 and "item 1: model 'nope'" in text_of(batch)
    assert text_of(union) == ("run_id takes the run_… ID that start_generation returned, not 'abc123': "
                              "did you mean run_abc123?")


async def test_send_feedback_reaches_flora_as_its_spec_says(make_session, fast_sandbox):
    async with make_session() as client:
        ids = await _ids(client)
        result, data = await call(client, "send_feedback", {
            "summary": "Upscale an image", "detail": "The user wanted a 4x upscale of a product shot.",
            "attempted_tools": ["run_action", "list_actions"], "workspace_id": ids["workspace_id"], "kind": None})
        bad, _ = await call(client, "send_feedback", {"summary": "", "detail": "x"})
    assert not result.is_error and data["feedback_id"].startswith("fb_") and data["kind"] == "missing_capability"
    [sent] = fast_sandbox.state.feedback
    assert sent["kind"] == "missing_capability" and sent["attempted_tools"] == ["run_action", "list_actions"]
    check({k: v for k, v in sent.items() if k not in ("feedback_id", "received_at", "account")},
          request_schema("recordFeedback"))
    assert bad.is_error and "summary" in text_of(bad)


async def test_the_sandbox_feedback_route_matches_openapi(sandbox):
    async with httpx2.AsyncClient(transport=sandbox.transport(), base_url=sandbox.base_url,
                                  headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"}) as http:
        body = {"kind": "missing_capability", "summary": "Upscale", "detail": "4x upscale", "run_id": "run_abc"}
        check(body, request_schema("recordFeedback"))
        r = await http.post("/feedback", json=body)
        assert r.status_code == 201
        check(r.json(), response_schema("recordFeedback", 201))
        r = await http.post("/feedback", json={"kind": "praise", "summary": "", "extra": 1})
        assert r.status_code == 400
        check(r.json(), response_schema("recordFeedback", 400))
        assert {f["field"] for f in r.json()["error"]["fields"]} == {"kind", "summary", "detail", "extra"}


async def test_voices_carry_flora_descriptions_so_an_agent_can_pick_a_calm_one(make_session):
    async with make_session() as client:
        _, models = await call(client, "list_models", {"type": "audio"})
    tts = next(m for m in models["models"] if m["id"] == "tts-elevenlabs-v3")
    assert "roger: Calm, confident male voice" in tts["params"]


async def test_a_public_output_url_is_the_resource_link_and_flora_uri_stays_readable(make_session):
    from flora_mcp.sandbox import Sandbox

    public = Sandbox(speed=200, public_base_url="https://media.flora-sandbox.example")
    async with make_session(public) as client:
        ids = await _ids(client)
        result, data = await call(client, "start_generation", {"type": "image", "prompt": "a mug",
                                                               "model": "t2i-flux-2-schnell", **ids})
        [link] = [c for c in result.content if c.type == "resource_link"]
        output = data["outputs"][0]
        mcp_uri = f"flora://runs/{data['run_id']}/outputs/{output['id']}"
        read = await client.read_resource(mcp_uri)  # the MCP form still reads
    assert str(link.uri) == output["url"] and output["url"].startswith("https://media.flora-sandbox.example/")
    assert f"through MCP: {mcp_uri}" in link.description
    assert read.contents and read.contents[0].mime_type == "image/png"
