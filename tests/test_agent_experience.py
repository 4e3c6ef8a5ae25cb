"""What an agent sees: previews it can afford, audio as a link, video it can look at, outputs it can
read through MCP and pass back as inputs, and refusals that say what happened."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from contextlib import asynccontextmanager

import pytest
from mcp.shared.exceptions import MCPError
from PIL import Image

from flora_mcp.errors import FloraError
from tests.helpers import call, first_ids, text_of


def _size(result) -> int:
    return len(json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True), separators=(",", ":")))


def _kinds(result) -> list[str]:
    return [c.type for c in result.content]


# --- previews ----------------------------------------------------------------------------------------
async def test_audio_is_a_link_with_length_and_size_unless_asked_inline(make_session):
    async with make_session() as client:
        ws, prj = await first_ids(client)
        result, data = await call(client, "start_generation", {"type": "audio", "prompt": "Welcome to the show",
                                                               "workspace_id": ws, "project_id": prj})
        assert not result.is_error and _kinds(result) == ["text", "resource_link"]
        [out] = data["outputs"]
        assert out["seconds"] == 2.0 and out["bytes"] > 80_000 and out["mime"] == "audio/wav"
        link = result.content[1]
        assert link.size == out["bytes"] and "2 s" in link.description
        assert _size(result) < 4000
        result, _ = await call(client, "get_run", {"run_id": data["run_id"], "previews": "full"})
    # opt-in, as an embedded blob: langchain-mcp-adapters raises NotImplementedError on AudioContent (issue 23)
    assert _kinds(result) == ["text", "resource", "resource_link"]
    assert result.content[1].resource.mime_type == "audio/wav" and result.content[1].resource.blob


async def test_four_variations_come_as_one_contact_sheet(make_session):
    async with make_session() as client:
        ws, prj = await first_ids(client)
        result, data = await call(client, "start_generation", {
            "type": "image", "prompt": "four mugs", "model": "t2i-flux-2-pro", "workspace_id": ws, "project_id": prj,
            "params": [{"name": "num_images", "value": "4"}, {"name": "aspect_ratio", "value": "1:1"}]})
    assert not result.is_error, text_of(result)
    assert _kinds(result) == ["text", "image"] + ["resource_link"] * 4
    sheet = Image.open(io.BytesIO(base64.b64decode(result.content[1].data)))
    assert sheet.size == (516, 516)  # 2 x 2 tiles of 256 px and a 4 px gap
    assert "numbered 1-4" in data["previews"] and _size(result) < 60_000


async def test_a_batch_of_runs_shares_one_contact_sheet(make_session):
    async with make_session() as client:
        ws, prj = await first_ids(client)
        items = [{"type": "image", "prompt": f"variation {i}"} for i in range(3)]
        result, data = await call(client, "start_generations", {"items": items, "workspace_id": ws, "project_id": prj})
    assert not result.is_error and data["finished"] == 3
    assert _kinds(result).count("image") == 1 and _kinds(result).count("resource_link") == 3


@pytest.mark.slow
async def test_a_video_answer_includes_frames_to_look_at(make_session, fast_sandbox):
    async with make_session() as client:
        ws, prj = await first_ids(client)
        result, data = await call(client, "start_generation", {
            "type": "video", "prompt": "waves at dusk", "model": "t2v-seedance-1-lite", "workspace_id": ws,
            "project_id": prj, "params": [{"name": "duration", "value": "3"}], "wait_seconds": 30})
    assert data["status"] == "completed", data
    [out] = data["outputs"]
    assert out["mime"] == "video/mp4" and out["seconds"] == 3.0 and out["size"] == "640x360"
    assert _kinds(result) == ["text", "image", "resource_link"]
    frames = Image.open(io.BytesIO(base64.b64decode(result.content[1].data)))
    assert frames.size == (516, 292)  # 4 frames of 256x144, 2 x 2
    assert frames.getpixel((10, 10)) != frames.getpixel((270, 150))  # the frames differ: the clip moves


# --- outputs as MCP resources --------------------------------------------------------------------
async def test_resource_links_are_readable_through_the_server_and_only_by_their_owner(make_session, fast_sandbox):
    async with make_session() as client:
        ws, prj = await first_ids(client)
        result, _ = await call(client, "start_generation", {"type": "image", "prompt": "a lamp",
                                                               "workspace_id": ws, "project_id": prj})
        uri = result.content[-1].uri
        read = await client.read_resource(uri)
        [content] = read.contents
        assert content.mime_type == "image/png" and base64.b64decode(content.blob)[:8] == b"\x89PNG\r\n\x1a\n"
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["flora://runs/{run_id}/outputs/{output_id}"]
        caps = client.server_capabilities
        assert caps.prompts is None and not caps.resources.subscribe and not caps.tools.list_changed
        with pytest.raises(MCPError, match="no output 'output_9'"):
            await client.read_resource(uri.replace("output_1", "output_9"))
    async with make_session(api_key="sk_sandbox_someone_else") as other:
        with pytest.raises(MCPError, match="(?i)not found"):
            await other.read_resource(uri)


# --- outputs chain into inputs ----------------------------------------------------------------------
async def test_an_output_object_is_accepted_as_an_input(make_session):
    async with make_session() as client:
        ws, prj = await first_ids(client)
        _, image = await call(client, "start_generation", {"type": "image", "prompt": "a sign", "workspace_id": ws,
                                                           "project_id": prj})
        output = image["outputs"][0]
        result, rotated = await call(client, "run_action", {"action_id": "rotate-image", "inputs": [output],
                                                            "params": [{"name": "angle", "value": "90"}],
                                                            "workspace_id": ws, "project_id": prj})
        assert not result.is_error, text_of(result)
        assert rotated["status"] == "completed"
        link = f"flora://runs/{rotated['run_id']}/outputs/{rotated['outputs'][0]['id']}"  # a resource link's URI
        result, blurred = await call(client, "run_action", {"action_id": "blur-image", "inputs": [
            {"type": "image", "url": link}], "workspace_id": ws, "project_id": prj})
        assert not result.is_error and blurred["status"] == "completed", text_of(result)
        asset = {"asset_id": "asset_1", "status": "ready", "url": output["url"], "type": "image",
                 "content_type": "image/png", "bytes": output["bytes"], "next": "use url as an input"}
        result, _ = await call(client, "run_action", {"action_id": "flip-image", "inputs": [asset],
                                                      "workspace_id": ws, "project_id": prj})
        assert not result.is_error, text_of(result)  # upload_asset's answer works as is too
        result, _ = await call(client, "run_action", {"action_id": "rotate-image", "params": {"angle": "90"},
                                                      "inputs": [{**output, "colour": "red", "shade": 2}],
                                                      "workspace_id": ws, "project_id": prj})
    assert result.is_error
    assert "inputs.0: unexpected key(s) 'colour', 'shade'" in text_of(result) and "output object" in text_of(result)


# --- hidden requirements -------------------------------------------------------------------------------
async def test_a_project_determines_its_workspace_and_run_action_picks_a_project(make_session):
    async with make_session() as client:
        _, ws_list = await call(client, "list_workspaces")
        assert len(ws_list["workspaces"]) == 2 and "no default workspace" in ws_list["note"]
        second = ws_list["workspaces"][1]["workspace_id"]
        _, projects = await call(client, "list_projects", {"workspace_id": second})
        project_id = projects["projects"][-1]["project_id"]
        result, data = await call(client, "start_generation", {"type": "text", "prompt": "a slogan",
                                                               "project_id": project_id})
        assert not result.is_error, text_of(result)
        assert data["model"] == "llm-claude-sonnet-4-5"  # FLORA chose it; the answer says which
        result, data = await call(client, "run_action", {"action_id": "split-text", "workspace_id": second,
                                                         "inputs": [{"type": "text", "text": "a,b"}]})
    assert not result.is_error, text_of(result)
    assert data["project_id"] == projects["projects"][0]["project_id"]  # the most recent one, and it says so


# --- saying what happened ------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "expected"), [
    ({"aspect_ratio": "16:9"}, "put it inside params: params=[{name: 'aspect_ratio', value: '16:9'}]"),
    ({"params": {"aspect_ratio": "portrait"}}, "Did you mean '9:16'?"),  # two portrait options: ask
    ({"prompt": "x" * 20_000}, "20,000 characters is more than the 4,000 allowed for image prompts"),
], ids=["flat-param", "near-miss-value", "long-prompt"])
async def test_refusals_point_at_the_fix_and_say_nothing_was_charged(make_session, fast_sandbox, args, expected):
    async with make_session() as client:
        ws, prj = await first_ids(client)
        result, _ = await call(client, "start_generation", {"type": "image", "prompt": "a bowl", "workspace_id": ws,
                                                            "project_id": prj, "model": "t2i-flux-2-pro", **args})
    assert result.is_error and expected in text_of(result), text_of(result)
    assert text_of(result).endswith("Nothing was started or charged.")
    assert fast_sandbox.state.charges == []


async def test_an_unambiguous_case_is_accepted(make_session, fast_sandbox):
    async with make_session() as client:
        ws, prj = await first_ids(client)
        result, data = await call(client, "start_generation", {
            "type": "Audio", "prompt": "hello", "model": "tts-elevenlabs-v3", "workspace_id": ws, "project_id": prj,
            "params": {"voice": "Roger"}, "dry_run": True})
    assert not result.is_error, text_of(result)
    assert data["request"]["params"] == {"voice": "roger"} and data["request"]["type"] == "audio"


# --- bounded memory --------------------------------------------------------------------------------------
class _Streaming:
    """A FloraClient stand-in whose output is `total` bytes in 1 MB chunks."""

    def __init__(self, total: int, declare: bool) -> None:
        self.total, self.declare = total, declare

    @asynccontextmanager
    async def stream_output(self, url, follow_redirects=True):
        total, declared = self.total, ({"content-length": str(self.total)} if self.declare else {})

        class Response:
            def __init__(self) -> None:
                self.headers = {"content-type": "video/mp4", **declared}

            async def aiter_bytes(self):
                for _ in range(total // 1_000_000):
                    yield b"\0" * 1_000_000

        yield Response()


@pytest.mark.parametrize("declare", [True, False])
async def test_a_huge_output_is_refused_while_streaming_and_never_held_whole(declare):
    from flora_mcp.server.outputs import FETCH_MAX_BYTES, SPOOL_IN_MEMORY, spooled

    with pytest.raises(FloraError, match="more than the 200.0 MB"):
        async with spooled(_Streaming(300_000_000, declare), "https://media.example/x.mp4", FETCH_MAX_BYTES):
            pass
    async with spooled(_Streaming(12_000_000, declare), "https://media.example/x.mp4", FETCH_MAX_BYTES) as (f, _, n):
        assert n == 12_000_000 and n > SPOOL_IN_MEMORY and f._rolled  # on disk, not in memory


def test_an_image_declaring_a_huge_canvas_is_not_decoded():
    from flora_mcp.server.pictures import NotPreviewable, image_preview

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # A valid PNG header for 50,000 x 50,000 pixels (2.5 GP): a few bytes that would need 7.5 GB decoded.
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    with pytest.raises(NotPreviewable, match="too large"):
        image_preview(io.BytesIO(bomb), max_edge=512, max_bytes=50_000)


def test_sandbox_video_is_a_real_mp4():
    import av

    from flora_mcp.sandbox.media import render_mp4

    with av.open(io.BytesIO(render_mp4("waves", (640, 360), seconds=2.0))) as container:
        stream = container.streams.video[0]
        assert container.format.name.startswith("mov,mp4") and stream.codec_context.name in ("h264", "mpeg4")
        assert sum(1 for _ in container.decode(stream)) == 24




@pytest.mark.slow
async def test_hosted_resource_reads_use_the_callers_own_key():
    from tests.helpers import DEMO_KEY, generate, hosted, mcp_http

    with hosted("--sandbox") as (base, _):
        async with mcp_http(base, DEMO_KEY) as client:
            run = await generate(client)
            uri = f"flora://runs/{run['run_id']}/outputs/{run['outputs'][0]['id']}"
            [content] = (await client.read_resource(uri)).contents
            assert content.mime_type == "image/png" and len(base64.b64decode(content.blob)) == run["outputs"][0]["bytes"]
        async with mcp_http(base, "sk_sandbox_another_user") as other:
            with pytest.raises(MCPError, match="(?i)not found"):
                await other.read_resource(uri)


async def test_runs_previewed_alone_still_join_a_sheet_when_asked_together(make_session):
    async with make_session() as client:
        ws, prj = await first_ids(client)
        runs = []
        for prompt in ("a cup", "a saucer"):
            result, data = await call(client, "start_generation", {"type": "image", "prompt": prompt,
                                                                   "workspace_id": ws, "project_id": prj})
            assert _kinds(result) == ["text", "image", "resource_link"]
            runs.append(data["run_id"])
        result, data = await call(client, "get_run", {"run_id": runs, "previews": "small"})
    assert _kinds(result) == ["text", "image", "resource_link", "resource_link"] and "numbered 1-2" in data["previews"]


async def test_previews_none_first_still_leaves_the_default_preview_for_later(make_session):
    async with make_session() as client:
        ws, prj = await first_ids(client)
        result, data = await call(client, "start_generation", {"type": "image", "prompt": "a vase", "previews": "none",
                                                               "workspace_id": ws, "project_id": prj})
        assert _kinds(result) == ["text", "resource_link"] and "previews" not in data
        result, data = await call(client, "get_run", {"run_id": data["run_id"]})
    assert _kinds(result) == ["text", "image", "resource_link"] and data["outputs"][0]["size"] == "1024x1024"
