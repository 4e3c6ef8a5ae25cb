"""The MCP server through the official SDK client, in memory, against the sandbox."""

from __future__ import annotations

import base64
import io

import anyio
import pytest
from mcp.client import Client
from PIL import Image

from flora_mcp.connect import build_client
from flora_mcp.sandbox import Sandbox
from flora_mcp.server import create_server
from flora_mcp.server.outputs import PREVIEW_MAX_BYTES, PREVIEW_MAX_PIXELS
from tests.helpers import call, first_ids, settings, text_of

CORE = {"list_workspaces", "list_projects", "create_project", "list_models", "start_generation", "get_run", "list_runs",
        "send_feedback"}


async def test_tools_list_has_patterns_enums_and_truthful_hints(make_session):
    async with make_session() as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert CORE | {"start_generations", "list_actions", "run_action", "list_techniques", "run_technique",
                   "upload_asset", "get_project", "read_canvas", "patch_canvas", "place_on_canvas",
                   "create_canvas_action", "run_canvas_action"} == set(tools)
    start = tools["start_generation"].input_schema
    assert start["required"] == ["type", "prompt"]
    assert start["properties"]["type"]["enum"] == ["image", "video", "audio", "text"]
    assert start["properties"]["workspace_id"]["anyOf"][0]["pattern"] == r"^ws_[A-Za-z0-9_-]{1,64}$"
    assert "list_workspaces" in start["properties"]["workspace_id"]["description"]
    # a project's name works where a paid start takes a project, so no prj_ pattern refuses it there
    assert "exact name" in start["properties"]["project_id"]["description"]
    assert tools["list_runs"].input_schema["properties"]["project_id"]["anyOf"][0]["pattern"] == \
        r"^prj_[A-Za-z0-9_-]{1,64}$"
    assert "list_models" in start["properties"]["model"]["description"]
    assert tools["get_run"].input_schema["properties"]["run_id"]["anyOf"][0]["pattern"] == r"^run_[A-Za-z0-9_-]{1,64}$"
    for name in ("list_workspaces", "list_projects", "list_models", "get_run"):
        assert tools[name].annotations.read_only_hint is True
    for name in ("start_generation", "start_generations", "create_project"):
        hints = tools[name].annotations
        assert not hints.read_only_hint and not hints.idempotent_hint and hints.destructive_hint is False


async def test_no_key_still_lists_tools_and_every_call_explains_the_fix():
    server = create_server(settings(api_key=None, sandbox=False))
    async with Client(server) as client:
        assert {t.name for t in (await client.list_tools()).tools} >= CORE
        for tool, args in [("list_workspaces", {}), ("list_models", {}), ("get_run", {"run_id": "run_x"}),
                           ("start_generation", {"type": "image", "prompt": "x", "workspace_id": "ws_1",
                                                 "project_id": "prj_1"})]:
            result, data = await call(client, tool, args)
            assert result.is_error, tool
            assert "FLORA_API_KEY" in text_of(result) and "--sandbox" in text_of(result)
            assert data["error"]["code"] == "not_configured"


async def test_sandbox_flag_needs_no_key():
    server = create_server(settings(sandbox=True, sandbox_speed=200), connect=build_client)
    async with Client(server) as client:
        result, data = await call(client, "list_workspaces")
    assert not result.is_error and data["workspaces"]


# --- guidance --------------------------------------------------------------------------------------
async def test_workspace_name_and_bare_id_answer_with_the_ws_id(make_session):
    async with make_session() as client:
        _, ws = await call(client, "list_workspaces")
        studio = ws["workspaces"][0]["workspace_id"]
        for wrong in ("FLORA Sandbox Studio", "flora sandbox studio", studio.removeprefix("ws_")):
            result, data = await call(client, "list_projects", {"workspace_id": wrong})
            assert result.is_error and data["error"]["code"] == "invalid_argument"
            assert studio in text_of(result) and "workspace_id" in text_of(result), wrong


async def test_project_name_and_bare_id_answer_with_the_prj_id(make_session):
    async with make_session() as client:
        workspace_id, _ = await first_ids(client)
        _, page = await call(client, "list_projects", {"workspace_id": workspace_id, "query": "Moodboard"})
        moodboard = page["projects"][0]["project_id"]
        result, _ = await call(client, "start_generation", {"type": "image", "prompt": "x",
                                                           "project_id": moodboard.removeprefix("prj_")})
        assert result.is_error and moodboard in text_of(result) and "project_id" in text_of(result)
        # a project's exact name (case and spacing aside) is one step from right: it works, and says the ID
        result, data = await call(client, "start_generation", {"type": "image", "prompt": "x", "dry_run": True,
                                                               "project_id": " moodBOARD "})
        assert not result.is_error, text_of(result)
        assert data["project_id"] == moodboard and data["request"]["project_id"] == moodboard
        assert data["workspace_id"] == workspace_id and f"is {moodboard}" in data["project_note"]


async def test_model_display_name_answers_with_the_endpoint_id(make_session, fast_sandbox):
    async with make_session() as client:
        workspace_id, project_id = await first_ids(client)
        for wrong in ("FLUX.2 Pro", "flux 2 pro", "FLUX.2-Pro"):
            result, _ = await call(client, "start_generation", {
                "type": "image", "prompt": "x", "workspace_id": workspace_id, "project_id": project_id,
                "model": wrong})
            assert result.is_error and "t2i-flux-2-pro" in text_of(result), wrong
        result, _ = await call(client, "start_generation", {
            "type": "video", "prompt": "x", "workspace_id": workspace_id, "project_id": project_id,
            "model": "t2i-flux-2-pro"})
        assert result.is_error and "type='image'" in text_of(result)
    assert fast_sandbox.state.charges == []


@pytest.mark.parametrize(("family", "kind"), [("t2i", "image"), ("i2v", "video"), ("tts", "audio"), ("llm", "text")])
async def test_model_family_in_type_is_explained(make_session, family, kind):
    async with make_session() as client:
        result, _ = await call(client, "start_generation", {"type": family, "prompt": "x"})
    assert result.is_error
    assert f"type={kind!r}" in text_of(result) and "image, video, audio, text" in text_of(result)


async def test_missing_ids_get_defaults_or_a_list_to_choose_from(make_session):
    async with make_session() as client:
        result, _ = await call(client, "start_generation", {"type": "image", "prompt": "x"})
        assert result.is_error and "2 workspaces" in text_of(result) and "ws_" in text_of(result)
        workspace_id, project_id = await first_ids(client)
        result, _ = await call(client, "start_generation", {"type": "image", "prompt": "x",
                                                           "workspace_id": workspace_id})
        assert result.is_error and project_id in text_of(result) and "create_project" in text_of(result)
    async with make_session(workspace_id=workspace_id, project_id=project_id) as client:
        result, data = await call(client, "start_generation", {"type": "image", "prompt": "x"})
        assert not result.is_error and data["status"] == "completed"


async def test_single_workspace_is_used_without_asking(make_session):
    async with make_session(api_key="sk_sandbox_solo_user") as client:
        result, data = await call(client, "list_projects")
    assert not result.is_error and data["workspace_id"].startswith("ws_") and data["projects"]


async def test_bad_run_id_and_unknown_argument_are_explained(make_session):
    async with make_session() as client:
        result, _ = await call(client, "get_run", {"run_id": "abc123"})
        assert result.is_error and "run_abc123" in text_of(result)
        result, _ = await call(client, "get_run", {"run_id": "run_nope"})
        assert result.is_error and "not found" in text_of(result).lower()
        result, _ = await call(client, "list_models", {"kind": "image"})
        assert result.is_error and "kind: unknown argument" in text_of(result) and "type" in text_of(result)


# --- generation ------------------------------------------------------------------------------------
async def test_one_call_gives_a_finished_image_with_preview_and_link(make_session, fast_sandbox):
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append((p, total, message))

    async with make_session() as client:
        workspace_id, project_id = await first_ids(client)
        result, data = await call(client, "start_generation", {
            "type": "image", "prompt": "a ceramic mug", "workspace_id": workspace_id, "project_id": project_id,
            "model": "t2i-flux-2-pro", "params": {"aspect_ratio": "16:9"}}, progress_callback=on_progress)
    assert not result.is_error
    assert data["status"] == "completed" and data["charged_usd"] > 0
    [output] = data["outputs"]
    assert output["type"] == "imageUrl" and output["mime"] == "image/png"
    kinds = [c.type for c in result.content]
    assert kinds == ["text", "image", "resource_link"]
    link = result.content[2]
    assert str(link.uri) == f"flora://runs/{data['run_id']}/outputs/{output['id']}" and link.mime_type == "image/png"
    assert output["url"] in link.description and link.size == output["bytes"]
    values = [p for p, _, _ in progress]
    assert values == sorted(values) and values[-1] == 100 and progress[-1][2] == "completed, 100%"
    assert fast_sandbox.state.charges[0][2] == data["charged_usd"]  # reported cost is what was charged


async def test_preview_of_a_4k_image_stays_within_bounds(make_session):
    async with make_session() as client:
        workspace_id, project_id = await first_ids(client)
        result, data = await call(client, "start_generation", {
            "type": "image", "prompt": "a very large poster", "workspace_id": workspace_id,
            "project_id": project_id, "model": "t2i-flux-2-pro", "params": {"resolution": "4K"}, "wait_seconds": 30,
            "previews": "full"})
    image_block = next(c for c in result.content if c.type == "image")
    raw = base64.b64decode(image_block.data)
    preview = Image.open(io.BytesIO(raw))
    assert preview.width * preview.height <= PREVIEW_MAX_PIXELS and len(raw) <= PREVIEW_MAX_BYTES
    assert data["outputs"][0]["bytes"] > len(raw)  # the full file was not inlined
    assert data["outputs"][0]["preview"].startswith(f"{preview.width}x{preview.height}")


async def test_wait_timeout_returns_a_resumable_answer(make_session):
    slow = Sandbox(speed=1)  # a 120 s video really takes 120 s
    async with make_session(sandbox=slow) as client:
        workspace_id, project_id = await first_ids(client)
        with anyio.fail_after(10):
            result, data = await call(client, "start_generation", {
                "type": "video", "prompt": "waves", "workspace_id": workspace_id, "project_id": project_id,
                "model": "t2v-veo-3", "wait_seconds": 0.5})
        assert not result.is_error and data["status"] in ("pending", "running")
        assert f"get_run with run_id={data['run_id']}" in data["next"] and "charged_usd_so_far" in data
        result, again = await call(client, "get_run", {"run_id": data["run_id"], "wait_seconds": 0})
        assert again["run_id"] == data["run_id"] and again["status"] in ("pending", "running")


@pytest.mark.slow
async def test_cancelling_a_wait_stops_polling(make_session):
    slow = Sandbox(speed=1)
    async with make_session(sandbox=slow) as client:
        workspace_id, project_id = await first_ids(client)
        _, data = await call(client, "start_generation", {
            "type": "video", "prompt": "waves", "workspace_id": workspace_id, "project_id": project_id,
            "wait_seconds": 0})
        with anyio.move_on_after(1.0):
            await call(client, "get_run", {"run_id": data["run_id"], "wait_seconds": 40})
        await anyio.sleep(0.2)
        polls = len([p for _, _, p in slow.state.request_log if p.startswith("/runs/")])
        await anyio.sleep(3)
        assert len([p for _, _, p in slow.state.request_log if p.startswith("/runs/")]) == polls


async def test_failed_run_surfaces_error_code_and_message(make_session, fast_sandbox):
    fast_sandbox.faults.fail_runs = 1
    async with make_session() as client:
        workspace_id, project_id = await first_ids(client)
        result, data = await call(client, "start_generation", {
            "type": "image", "prompt": "x", "workspace_id": workspace_id, "project_id": project_id})
    assert not result.is_error  # the call worked; the run failed
    assert data["status"] == "failed" and data["error_code"] == "provider_error"
    assert "provider failed" in data["error_message"] and "retry" in data["next"]


async def test_same_idempotency_key_returns_the_same_run(make_session, fast_sandbox):
    async with make_session() as client:
        workspace_id, project_id = await first_ids(client)
        args = {"type": "text", "prompt": "a haiku", "workspace_id": workspace_id, "project_id": project_id,
                "idempotency_key": "agent-retry-1"}
        _, first = await call(client, "start_generation", args)
        _, second = await call(client, "start_generation", args)
    assert first["run_id"] == second["run_id"] and len(fast_sandbox.state.charges) == 1
    assert "a haiku" in first["outputs"][0]["text"]


async def test_outputs_are_saved_when_an_output_dir_is_set(make_session, tmp_path):
    async with make_session(output_dir=tmp_path) as client:
        workspace_id, project_id = await first_ids(client)
        _, data = await call(client, "start_generation", {
            "type": "audio", "prompt": "hello there", "workspace_id": workspace_id, "project_id": project_id})
    saved = data["outputs"][0]
    assert saved["path"].startswith(str(tmp_path)) and saved["mime"] == "audio/wav"
    assert (tmp_path / data["run_id"]).is_dir()
    with open(saved["path"], "rb") as fh:
        assert fh.read(4) == b"RIFF"


# --- money ---------------------------------------------------------------------------------------
async def test_bad_params_are_refused_before_any_charge(make_session, fast_sandbox):
    async with make_session() as client:
        workspace_id, project_id = await first_ids(client)
        base = {"type": "image", "prompt": "x", "workspace_id": workspace_id, "project_id": project_id,
                "model": "t2i-flux-2-pro"}
        result, _ = await call(client, "start_generation", base | {"params": {"aspect_ratio": "17:9"}})
        assert result.is_error and "Did you mean '16:9'" in text_of(result) and "1:1" in text_of(result)
        result, _ = await call(client, "start_generation", base | {"params": {"guidance": 50}})
        assert result.is_error and "guidance" in text_of(result) and "1-10" in text_of(result)
        result, _ = await call(client, "start_generation", base | {"params": {"aspect": "1:1"}})
        assert result.is_error and "Did you mean 'aspect_ratio'" in text_of(result)
        result, _ = await call(client, "start_generation", base | {"params": {"num_images": "two"}})
        assert result.is_error and "integer" in text_of(result)
        result, _ = await call(client, "start_generation", base | {"model": "i2i-flux-kontext-pro"})
        assert result.is_error and "params.image_url: required" in text_of(result)
        result, _ = await call(client, "start_generation", base | {"model": None, "params": {"seed": 1}})
        assert result.is_error and "params belong to a model" in text_of(result)
    assert fast_sandbox.state.charges == []


async def test_dry_run_estimates_without_starting(make_session, fast_sandbox):
    async with make_session() as client:
        workspace_id, project_id = await first_ids(client)
        result, data = await call(client, "start_generation", {
            "type": "video", "prompt": "x", "workspace_id": workspace_id, "project_id": project_id,
            "model": "t2v-veo-3", "dry_run": True})
    assert not result.is_error and data["dry_run"] and data["estimated_credits"] == 400
    assert data["estimated_usd"] == 4.0 and fast_sandbox.state.charges == []


async def test_cost_guard_refuses_an_expensive_start(make_session, fast_sandbox):
    async with make_session(max_cost_per_run=1.0) as client:
        workspace_id, project_id = await first_ids(client)
        result, _ = await call(client, "start_generation", {
            "type": "video", "prompt": "x", "workspace_id": workspace_id, "project_id": project_id,
            "model": "t2v-veo-3"})
        assert result.is_error and "FLORA_MAX_COST_PER_RUN" in text_of(result) and "$4.00" in text_of(result)
        result, _ = await call(client, "start_generation", {
            "type": "image", "prompt": "x", "workspace_id": workspace_id, "project_id": project_id,
            "model": "t2i-flux-2-schnell"})
        assert not result.is_error
    assert len(fast_sandbox.state.charges) == 1


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # 2026-07-28 input_required, and mid-call elicitation
async def test_cost_guard_asks_the_user_when_the_client_can(fast_sandbox, mode):
    from mcp.client.context import ClientRequestContext
    from mcp_types import ElicitRequestParams, ElicitResult

    asked: list[str] = []

    async def answer(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})

    server = create_server(settings(max_cost_per_run=1.0), client=fast_sandbox.client())
    async with Client(server, elicitation_callback=answer, mode=mode) as client:
        workspace_id, project_id = await first_ids(client)
        result, data = await call(client, "start_generation", {
            "type": "video", "prompt": "x", "workspace_id": workspace_id, "project_id": project_id,
            "model": "t2v-veo-3", "wait_seconds": 0})
    assert asked and "needs your OK" in asked[0] and "$4.00" in asked[0]
    assert not result.is_error and data["run_id"] and len(fast_sandbox.state.charges) == 1


async def test_session_budget_counts_settled_charges(make_session, fast_sandbox):
    async with make_session(session_budget=0.1) as client:
        workspace_id, project_id = await first_ids(client)
        args = {"type": "image", "prompt": "x", "workspace_id": workspace_id, "project_id": project_id,
                "model": "t2i-flux-2-pro"}
        result, data = await call(client, "start_generation", args)
        assert not result.is_error and data["charged_usd"] == 0.075
        result, _ = await call(client, "start_generation", args | {"prompt": "y"})
        assert result.is_error and "budget" in text_of(result) and "Nothing was started" in text_of(result)
    assert len(fast_sandbox.state.charges) == 1


async def test_batch_of_ten_with_two_bad_items(make_session, fast_sandbox):
    async with make_session() as client:
        workspace_id, project_id = await first_ids(client)
        items = [{"type": "image", "prompt": f"fox {i}", "model": "t2i-flux-2-schnell"} for i in range(10)]
        items[3]["params"] = {"aspect_ratio": "2:1"}
        items[7]["model"] = "FLUX.2 Schnell"
        result, data = await call(client, "start_generations", {
            "items": items, "workspace_id": workspace_id, "project_id": project_id, "wait_seconds": 20})
    assert not result.is_error and data["started"] == 8 and len(fast_sandbox.state.charges) == 8
    rows = data["runs"]
    assert "aspect_ratio" in rows[3]["error"] and "Allowed" in rows[3]["error"]
    assert "t2i-flux-2-schnell" in rows[7]["error"]
    finished = [r for r in rows if r.get("status") == "completed"]
    assert len(finished) == 8 and data["finished"] == 8
    charged = sum(c for _, _, c in fast_sandbox.state.charges)
    assert data["charged_usd"] == pytest.approx(charged)


async def test_batch_and_multi_run_follow_with_partial_completion(make_session):
    slow = Sandbox(speed=20)
    async with make_session(sandbox=slow) as client:
        workspace_id, project_id = await first_ids(client)
        items = [{"type": "image", "prompt": "quick", "model": "t2i-flux-2-schnell"},
                 {"type": "video", "prompt": "slow", "model": "t2v-veo-3"}]
        _, batch = await call(client, "start_generations", {
            "items": items, "workspace_id": workspace_id, "project_id": project_id, "wait_seconds": 0})
        run_ids = [r["run_id"] for r in batch["runs"]]
        result, data = await call(client, "get_run", {"run_id": run_ids, "wait_seconds": 1})
    assert not result.is_error and data["of"] == 2 and data["finished"] == 1
    assert "charged_usd_so_far" in data and run_ids[1] in data["next"]


async def test_batch_retried_after_dropped_connection_starts_no_duplicates(make_session, fast_sandbox):
    fast_sandbox.faults.drop_after_processing = 3
    fast_sandbox.faults.only_paths = ("/generate",)
    async with make_session() as client:
        workspace_id, project_id = await first_ids(client)
        items = [{"type": "text", "prompt": f"line {i}"} for i in range(5)]
        result, data = await call(client, "start_generations", {
            "items": items, "workspace_id": workspace_id, "project_id": project_id, "wait_seconds": 0})
    assert not result.is_error
    assert len(fast_sandbox.state.charges) == 5  # five items, five runs, whatever the network did
    accepted = [r for r in data["runs"] if r["status"] == "accepted"]
    assert len(accepted) == 3 and all("do not start it again" in r["next"] for r in accepted)


# --- toolsets ------------------------------------------------------------------------------------
async def test_toolsets_and_read_only_mode_change_tools_list(fast_sandbox):
    async def names(**kw) -> set[str]:
        async with Client(create_server(settings(**kw), client=fast_sandbox.client())) as client:
            return {t.name for t in (await client.list_tools()).tools}

    assert await names(toolsets="core") == CORE
    assert await names(read_only=True) == {"list_workspaces", "list_projects", "list_models", "get_run",
                                           "list_runs", "list_actions", "list_techniques", "get_project",
                                           "read_canvas"}
    with pytest.raises(ValueError, match="Unknown toolset"):
        create_server(settings(toolsets="everything"))


def test_no_configuration_is_read_at_import(monkeypatch):
    import importlib

    import flora_mcp.server as server_module

    monkeypatch.setenv("FLORA_TOOLSETS", "nonsense")
    importlib.reload(server_module)  # importing must not read FLORA_* (it would raise here)
    with pytest.raises(ValueError):
        server_module.create_server()


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
async def test_log_messages_reach_the_client_and_respect_set_level(fast_sandbox):
    received: list[str] = []

    async def on_log(params) -> None:
        received.append(str(params.data))

    server = create_server(settings(), client=fast_sandbox.client())
    for level, expect in (("info", True), ("warning", False)):
        received.clear()
        async with Client(server, logging_callback=on_log, mode="legacy") as client:
            workspace_id, project_id = await first_ids(client)
            await client.set_logging_level(level)
            await call(client, "start_generation", {"type": "text", "prompt": "x", "workspace_id": workspace_id,
                                                    "project_id": project_id, "wait_seconds": 0})
        assert any("started run_" in m for m in received) is expect, (level, received)


@pytest.mark.slow
async def test_model_catalogue_is_cached_and_a_stale_copy_survives_an_outage(fast_sandbox, monkeypatch):
    from flora_mcp.server import toolcall

    server = create_server(settings(), client=fast_sandbox.client())
    async with Client(server) as client:
        await call(client, "list_models")
        await call(client, "list_models", {"type": "video"})
        model_calls = [p for _, _, p in fast_sandbox.state.request_log if p == "/models"]
        assert len(model_calls) == 1  # the second answer came from the cache
        monkeypatch.setattr(toolcall, "CATALOG_TTL", -1.0)  # every copy is stale now
        fast_sandbox.faults.server_errors = 100  # and FLORA is down
        result, data = await call(client, "list_models", {"type": "image"})
    assert not result.is_error and data["models"]


async def test_asking_again_for_a_finished_run_does_not_download_it_again(make_session, fast_sandbox):
    async with make_session() as client:
        workspace_id, project_id = await first_ids(client)
        _, data = await call(client, "start_generation", {"type": "image", "prompt": "x",
                                                          "workspace_id": workspace_id, "project_id": project_id})
        assert len(fast_sandbox.state.downloads) == 1
        result, again = await call(client, "get_run", {"run_id": data["run_id"]})
        assert again["outputs"] == data["outputs"] and [c.type for c in result.content] == ["text", "resource_link"]
        assert "previews='small'" in again["previews"]  # sent once; says how to see them again
        result, asked = await call(client, "get_run", {"run_id": data["run_id"], "previews": "small"})
    assert [c.type for c in result.content] == ["text", "image", "resource_link"] and "previews" not in asked
    assert len(fast_sandbox.state.downloads) == 1  # the preview was not fetched and shrunk again


def test_recent_keeps_only_the_newest_entries():
    from flora_mcp._recent import Recent

    recent = Recent(3)
    for i in range(10):
        recent[i] = i
    assert list(recent) == [7, 8, 9]


async def test_the_sandbox_is_chosen_at_the_edge_and_a_server_without_the_choice_says_so():
    """create_server's own default speaks to FLORA only; FLORA_SANDBOX without connect=build_client is
    answered (no request leaves for FLORA) with the fix."""
    async with Client(create_server(settings(sandbox=True))) as client:
        result, data = await call(client, "list_workspaces")
    assert result.is_error and data["error"]["code"] == "not_configured"
    assert "connect=flora_mcp.build_client" in text_of(result)


async def test_sandbox_mode_never_uses_a_live_key_from_the_environment():
    server = create_server(settings(sandbox=True, sandbox_speed=200, api_key="sk_live_real_key_in_env"), connect=build_client)
    async with Client(server) as client:
        result, data = await call(client, "list_workspaces")
    assert not result.is_error and data["workspaces"][0]["name"] == "FLORA Sandbox Studio"


async def test_an_unwritable_output_dir_is_reported_and_the_run_still_answers(make_session, tmp_path):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    async with make_session(output_dir=blocked) as client:
        workspace_id, project_id = await first_ids(client)
        result, data = await call(client, "start_generation", {"type": "image", "prompt": "x",
                                                               "workspace_id": workspace_id, "project_id": project_id})
    assert not result.is_error and data["status"] == "completed"
    assert "not saved" in data["outputs"][0]["note"] and any(c.type == "image" for c in result.content)
