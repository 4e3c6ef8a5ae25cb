"""The canvas tools, driven through the MCP client on the sandbox: the agent's work lands on the
project canvas, patches are checked before they are sent, canvas actions are paid like run_action."""

from __future__ import annotations

import pytest

from flora_mcp.mermaid import parse
from tests.helpers import call, first_ids, text_of

PATCH = 'graph LR\n  prompt["Mug prompt (text)"]\n  render["Flux render (image)"]\n  prompt -->|text| render'
PARAMS = {"prompt": {"prompt": "a ceramic mug at dawn"}, "render": {"model": "t2i-flux-2-pro"}}


def _patches(sandbox) -> list:
    return [r for r in sandbox.state.request_log if r[1] == "PATCH"]


async def _download(sandbox, url: str) -> bytes:
    async with sandbox.client() as flora, flora.stream_output(url) as response:
        return await response.aread()


async def _generate(client, workspace_id: str, project_id: str) -> dict:
    result, run = await call(client, "start_generation", {"type": "image", "prompt": "a mug", "model": "t2i-flux-2-pro",
                                                          "workspace_id": workspace_id, "project_id": project_id})
    assert not result.is_error and run["status"] == "completed", text_of(result)
    return run


async def test_generate_place_on_canvas_then_find_the_node(make_session, fast_sandbox):
    async with make_session() as client:
        workspace_id, project_id = await first_ids(client)
        run = await _generate(client, workspace_id, project_id)
        canvas_url = f"{fast_sandbox.state.public_base_url}/canvas/{project_id}"
        assert run["canvas_url"] == canvas_url  # the finished generation says where to see it

        result, placed = await call(client, "place_on_canvas", {"run_id": run["run_id"], "project_id": project_id})
        assert not result.is_error, text_of(result)
        [row] = placed["placed"]
        assert row["output_id"] == run["outputs"][0]["id"] and placed["canvas_url"] == canvas_url

        result, canvas = await call(client, "read_canvas", {"project_id": project_id})
        assert not result.is_error, text_of(result)
        node = next(n for n in canvas["nodes"] if n["id"] == row["node_id"])
        assert node["kind"] == "image" and node["asset_id"] == row["asset_id"] and node["size"] == "1024x1024"
        assert row["node_id"] in parse(canvas["diagram"]).nodes  # the same ID is in the Mermaid
        assert text_of(result).startswith("graph LR\n")  # agents read the diagram as written

        # The placed file is a copy of the output, byte for byte.
        assert await _download(fast_sandbox, run["outputs"][0]["url"]) == await _download(fast_sandbox, node["url"])

        result, project = await call(client, "get_project", {"project_id": project_id})
        assert project["canvas_url"] == canvas_url and project["canvas"]["node_count"] == 1


async def test_a_prompt_node_wired_to_a_model_node_round_trips(make_session, fast_sandbox):
    async with make_session() as client:
        _, project_id = await first_ids(client)
        result, patched = await call(client, "patch_canvas", {"project_id": project_id, "diagram": PATCH,
                                                              "node_params": PARAMS})
        assert not result.is_error, text_of(result)
        assert (patched["created_nodes"], patched["created_edges"]) == (2, 1)

        _, canvas = await call(client, "read_canvas", {"project_id": project_id})
        back = parse(canvas["diagram"])
        sent = parse(PATCH)
        assert back.topology() == sent.topology()  # what was patched is what the canvas shows
        nodes = {n["id"]: n for n in canvas["nodes"]}
        assert nodes["prompt"]["text"] == "a ceramic mug at dawn" and nodes["render"]["kind"] == "image"
        assert canvas["summary"]["workflow_count"] == 1
        # FLORA's reads do not return what a node was set to generate with: what the patch set is shown.
        assert nodes["render"]["set_by_patch"] == {"model": "t2i-flux-2-pro"}
        assert nodes["prompt"]["set_by_patch"] == {"prompt": "a ceramic mug at dawn"}

        # Applying the diagram the canvas returned changes nothing: it is a fixed point.
        _, again = await call(client, "patch_canvas", {"project_id": project_id, "diagram": canvas["diagram"]})
        assert (again["created_nodes"], again["created_edges"]) == (0, 0) and "warnings" not in again


@pytest.mark.parametrize(("args", "expected"), [
    ({"diagram": "graph LR\n  prompt -.-> render"}, 'diagram: line 2: only "-->" edges are supported'),
    ({"diagram": 'graph LR\n  a["unclosed'}, "diagram: line 2: unclosed quote"),
    ({"diagram": "flowchart sideways\n  a --> b"}, 'diagram: line 1: expected the header "graph LR"'),
    ({"diagram": "graph LR\n  ghost --> render"}, "diagram: line 2: node ghost is not on the canvas"),
    ({"diagram": 'graph LR\n  x["No kind"]'}, "diagram: line 2: new node x needs its kind"),
    ({"diagram": 'graph LR\n  x["X (text)"]', "node_params": {"y": {"prompt": "hi"}}},
     "node_params.y: not a node of the diagram (its nodes: x)"),
    ({"diagram": 'graph LR\n  x["X (image)"]', "node_params": {"x": {"model": "Flux 2 Pro"}}},
     "node_params.x.model takes an endpoint ID, not 'Flux 2 Pro': use t2i-flux-2-pro"),
    ({"diagram": 'graph LR\n  x["X (image)"]', "node_params": {"x": {"colour": "red"}}},
     "node_params.x.colour: not a node param; use prompt, model"),
], ids=[
    "dotted-edge", "unclosed-quote", "wrong-header", "unknown-node", "new-node-without-kind",
    "params-for-missing-node", "model-by-name", "unknown-node-param"
])
async def test_bad_patches_are_answered_with_the_fix_and_nothing_is_sent(make_session, fast_sandbox, args, expected):
    async with make_session() as client:
        _, project_id = await first_ids(client)
        await call(client, "patch_canvas", {"project_id": project_id, "diagram": PATCH, "node_params": PARAMS})
        before = len(_patches(fast_sandbox))
        result, body = await call(client, "patch_canvas", {"project_id": project_id, **args})
        assert result.is_error
        message = body["error"]["message"]
        assert expected in message and message.endswith("Nothing was sent"), message
        assert len(_patches(fast_sandbox)) == before
    if "ghost" in args["diagram"]:  # the answer lists the IDs that do exist
        assert "prompt (Mug prompt, text), render (Flux render, image)" in message


async def _action_on_canvas(client, workspace_id: str, project_id: str, *, wire: bool = True) -> tuple[str, str]:
    run = await _generate(client, workspace_id, project_id)
    _, placed = await call(client, "place_on_canvas", {"run_id": run["run_id"], "project_id": project_id})
    image = placed["placed"][0]["node_id"]
    result, created = await call(client, "create_canvas_action", {"project_id": project_id, "action_id": "rotate-image",
                                                                  "params": {"angle": "90"}})
    assert not result.is_error, text_of(result)
    assert created["needs"] == "an image (image)"
    if wire:
        result, _ = await call(client, "patch_canvas", {"project_id": project_id,
                                                        "diagram": f"graph LR\n  {image} --> {created['node_id']}"})
        assert not result.is_error, text_of(result)
    return image, created["node_id"]


async def test_a_canvas_action_runs_on_its_wired_input_and_its_output_lands_on_the_canvas(make_session, fast_sandbox):
    async with make_session() as client:
        workspace_id, project_id = await first_ids(client)
        _, action = await _action_on_canvas(client, workspace_id, project_id)
        result, run = await call(client, "run_canvas_action", {"project_id": project_id, "node_id": action})
        assert not result.is_error, text_of(result)
        assert run["status"] == "completed" and run["charged_usd"] == 0.01 and run["action_id"] == "rotate-image"
        assert run["canvas_url"].endswith(f"/canvas/{project_id}")
        assert any(c.type == "image" for c in result.content)  # outputs with previews, like run_action

        _, canvas = await call(client, "read_canvas", {"project_id": project_id})
        chart = parse(canvas["diagram"])
        [made] = [e.target for e in chart.edges if e.source == action]
        assert chart.nodes[made].kind == "image"
        assert next(n for n in canvas["nodes"] if n["id"] == made)["url"] == run["outputs"][0]["url"]
    assert len(fast_sandbox.charged_runs()) == 2  # the generation and the action


async def test_canvas_action_runs_are_idempotent(make_session, fast_sandbox):
    async with make_session() as client:
        workspace_id, project_id = await first_ids(client)
        _, action = await _action_on_canvas(client, workspace_id, project_id)
        args = {"project_id": project_id, "node_id": action, "idempotency_key": "rotate-once"}
        _, first = await call(client, "run_canvas_action", args)
        _, second = await call(client, "run_canvas_action", args)
        assert first["run_id"] == second["run_id"] and second["status"] == "completed"
    runs = [r for r in fast_sandbox.state.request_log if r[2].endswith(f"/actions/{action}/run")]
    assert len(runs) == 1 and len(fast_sandbox.charged_runs()) == 2


@pytest.mark.parametrize(("case", "expected"), [
    ("unwired", "has no inputs: it needs an image. Wire one with patch_canvas"),
    ("not-an-action", "is an image node, not an action"),
    ("missing", "is not on the canvas"),
    ("over-limit", "Canvas action n2 not started: its estimate is above FLORA_MAX_COST_PER_RUN $0.005 (up to $0.01"),
])
async def test_canvas_action_runs_are_checked_before_spend(make_session, fast_sandbox, case, expected):
    limit = {"max_cost_per_run": 0.005} if case == "over-limit" else {}
    async with make_session(**limit) as client:
        workspace_id, project_id = await first_ids(client)
        image, action = await _action_on_canvas_unpaid(client, fast_sandbox, workspace_id, project_id,
                                                       wire=case != "unwired")
        node = {"not-an-action": image, "missing": "n99"}.get(case, action)
        charged = len(fast_sandbox.charged_runs())
        result, body = await call(client, "run_canvas_action", {"project_id": project_id, "node_id": node})
        assert result.is_error
        assert expected in body["error"]["message"], body["error"]["message"]
    assert len(fast_sandbox.charged_runs()) == charged
    assert not [r for r in fast_sandbox.state.request_log if r[2].endswith("/run")]


async def _action_on_canvas_unpaid(client, sandbox, workspace_id: str, project_id: str, *, wire: bool) -> tuple[str, str]:
    """An uploaded image and a rotate action on the canvas, without any paid run."""
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.new("RGB", (40, 20), (200, 40, 40)).save(buffer, format="PNG")
    from flora_mcp.models import UploadRequest

    asset = await sandbox.client().upload_asset(UploadRequest(workspace_id=workspace_id, filename="red.png",
                                                              content_type="image/png", size=len(buffer.getvalue())),
                                                buffer.getvalue())
    result, placed = await call(client, "place_on_canvas", {"asset_id": asset.asset_id, "project_id": project_id})
    assert not result.is_error, text_of(result)
    image = placed["placed"][0]["node_id"]
    _, created = await call(client, "create_canvas_action", {"project_id": project_id, "action_id": "rotate-image"})
    if wire:
        await call(client, "patch_canvas", {"project_id": project_id,
                                            "diagram": f"graph LR\n  {image} --> {created['node_id']}"})
    return image, created["node_id"]


@pytest.mark.parametrize(("args", "expected"), [
    ({}, "pass exactly one of run_id"),
    ({"asset_id": "asset_x", "url": "https://x.test/a.png"}, "pass exactly one of run_id"),
    ({"url": "ftp://x.test/a.png"}, "url: an https URL FLORA can fetch"),
    ({"asset_id": "asset_x", "output_ids": ["output_1"]}, "output_ids: only with run_id"),
], ids=["no-source", "two-sources", "non-https-url", "output-ids-without-run"])
async def test_place_on_canvas_explains_what_it_needs(make_session, args, expected):
    async with make_session() as client:
        _, project_id = await first_ids(client)
        result, body = await call(client, "place_on_canvas", {"project_id": project_id, **args})
        assert result.is_error and expected in body["error"]["message"]


async def test_a_running_run_is_placed_only_once_finished(make_session, fast_sandbox):
    async with make_session() as client:
        workspace_id, project_id = await first_ids(client)
        _, run = await call(client, "start_generation", {"type": "video", "prompt": "waves", "wait_seconds": 0,
                                                         "workspace_id": workspace_id, "project_id": project_id})
        result, body = await call(client, "place_on_canvas", {"run_id": run["run_id"], "project_id": project_id})
        assert result.is_error and "not completed; call get_run until it finishes" in body["error"]["message"]
        result, body = await call(client, "place_on_canvas", {"run_id": run["run_id"], "project_id": project_id,
                                                              "output_ids": ["nope"]})
        assert result.is_error


async def test_create_canvas_action_checks_the_action_and_its_params(make_session, fast_sandbox):
    async with make_session() as client:
        _, project_id = await first_ids(client)
        result, body = await call(client, "create_canvas_action", {"project_id": project_id, "action_id": "rotate"})
        assert result.is_error and "use rotate-image" in body["error"]["message"]
        result, body = await call(client, "create_canvas_action", {"project_id": project_id,
                                                                   "action_id": "rotate-image",
                                                                   "params": {"angle": "45"}})
        assert result.is_error and "params.angle: '45' is not allowed. Allowed: 90, 180, 270" in body["error"]["message"]
    assert not [r for r in fast_sandbox.state.request_log if r[1] == "POST" and r[2].endswith("/actions")]


async def test_read_only_tools_are_marked_and_read_only_mode_keeps_only_them(make_session):
    async with make_session() as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    for name in ("get_project", "read_canvas"):
        assert tools[name].annotations.read_only_hint is True
    for name in ("patch_canvas", "place_on_canvas", "create_canvas_action", "run_canvas_action"):
        assert not (tools[name].annotations and tools[name].annotations.read_only_hint)
    async with make_session(read_only=True, toolsets="canvas") as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert names == {"get_project", "read_canvas"}


async def test_finished_action_answers_say_where_to_see_them(make_session, fast_sandbox):
    async with make_session() as client:
        workspace_id, project_id = await first_ids(client)
        result, out = await call(client, "run_action", {"action_id": "split-text", "inputs": [{"type": "text",
                                                        "text": "a,b"}], "params": {"delimiter": ","},
                                                        "workspace_id": workspace_id, "project_id": project_id})
        assert not result.is_error, text_of(result)
        assert out["canvas_url"] == f"{fast_sandbox.state.public_base_url}/canvas/{project_id}"
        assert out["project_id"] == project_id


async def test_the_demo_ends_with_its_image_on_the_canvas(tmp_path, capsys):
    from flora_mcp.demo import run_demo

    assert await run_demo(output_dir=tmp_path, speed=200) == 0
    printed = capsys.readouterr().out
    tail = printed[printed.index("The project canvas ("):]
    chart = parse(tail[tail.index("graph LR"):])
    [node] = chart.nodes.values()
    assert node.kind == "image" and node.label.endswith("-output_1.png")


async def test_another_key_cannot_read_or_patch_someone_elses_canvas(make_session, fast_sandbox):
    async with make_session() as client:
        _, project_id = await first_ids(client)
        await call(client, "patch_canvas", {"project_id": project_id, "diagram": PATCH})
    async with make_session(api_key="sk_sandbox_someone_else") as other:
        result, body = await call(other, "read_canvas", {"project_id": project_id})
        assert result.is_error and body["error"]["code"] == "not_found"
        result, body = await call(other, "patch_canvas", {"project_id": project_id, "diagram": PATCH})
        assert result.is_error and body["error"]["code"] == "not_found"
    assert len(_patches(fast_sandbox)) == 1


async def test_the_sandbox_canvas_url_shows_the_canvas(make_session, fast_sandbox):
    import httpx2

    async with make_session() as client:
        _, project_id = await first_ids(client)
        _, patched = await call(client, "patch_canvas", {"project_id": project_id, "diagram": PATCH})
    async with httpx2.AsyncClient(transport=fast_sandbox.transport()) as http:
        page = await http.get(patched["canvas_url"])
    assert page.status_code == 200 and parse(page.text).topology() == parse(PATCH).topology()
