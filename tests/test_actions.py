"""Beyond generation: upload an image, run actions and a technique on it, see the outputs."""

from __future__ import annotations

import base64
import io

import pytest
from mcp.client import Client
from PIL import Image

from flora_mcp.server import create_server
from tests.helpers import call, first_ids, settings, text_of


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "product.png"
    image = Image.new("RGB", (300, 200), (200, 40, 40))
    image.paste((20, 20, 220), (0, 0, 150, 200))  # left half blue: rotation and flips are visible
    image.save(path)
    return path


def _image_of(result) -> Image.Image:
    block = next(c for c in result.content if c.type == "image")
    return Image.open(io.BytesIO(base64.b64decode(block.data))).convert("RGB")


async def test_upload_then_rotate_then_technique(make_session, photo, fast_sandbox):
    async with make_session() as client:
        workspace_id, project_id = await first_ids(client)
        result, asset = await call(client, "upload_asset", {"path": str(photo), "workspace_id": workspace_id})
        assert not result.is_error, text_of(result)
        assert asset["status"] == "ready" and asset["type"] == "image" and asset["bytes"] == photo.stat().st_size

        result, rotated = await call(client, "run_action", {
            "action_id": "rotate-image", "inputs": [{"type": "image", "url": asset["url"]}],
            "params": {"angle": "90"}, "workspace_id": workspace_id, "project_id": project_id})
        assert not result.is_error, text_of(result)
        assert rotated["status"] == "completed" and rotated["charged_usd"] > 0
        preview = _image_of(result)
        assert preview.size == (200, 300)  # rotated a quarter turn
        assert preview.getpixel((100, 10))[2] > 150  # the blue half is now on top

        result, chained = await call(client, "run_action", {  # an output feeds the next action
            "action_id": "add-text-to-image", "inputs": [{"type": "image", "url": rotated["outputs"][0]["url"]}],
            "params": {"text": "SALE", "position": "center"}, "workspace_id": workspace_id, "project_id": project_id})
        assert not result.is_error and chained["status"] == "completed"

        result, techniques = await call(client, "list_techniques", {"workspace_id": workspace_id})
        assert "tech_product_backdrop" in [t["id"] for t in techniques["techniques"]]
        result, poster = await call(client, "run_technique", {
            "technique_id": "tech_product_backdrop", "workspace_id": workspace_id,
            "inputs": {"product": asset["url"], "mood": "Autumn launch"}})
        assert not result.is_error, text_of(result)
        assert poster["status"] == "completed"
        assert _image_of(result).size == (512, 512)  # the 1024x1024 poster's small preview (the default)
    assert len(fast_sandbox.state.charges) == 3


async def test_text_actions_split_concat_replace(make_session):
    async with make_session() as client:
        workspace_id, project_id = await first_ids(client)
        ids = {"workspace_id": workspace_id, "project_id": project_id}
        _, split = await call(client, "run_action", {"action_id": "split-text", "inputs": [
            {"type": "text", "text": "red, green, blue"}], "params": {"delimiter": ","}} | ids)
        assert [o["text"] for o in split["outputs"]] == ["red", "green", "blue"]
        _, joined = await call(client, "run_action", {"action_id": "concat-text", "inputs": [
            {"type": "text", "text": "hello"}, {"type": "text", "text": "world"}], "params": {"separator": " - "}} | ids)
        assert joined["outputs"][0]["text"] == "hello - world"
        _, replaced = await call(client, "run_action", {"action_id": "find-and-replace-text", "inputs": [
            {"type": "text", "text": "a cat and a cat"}], "params": {"find": "cat", "replace": "dog"}} | ids)
        assert replaced["outputs"][0]["text"] == "a dog and a dog"


async def test_action_params_and_inputs_are_checked_before_spending(make_session, fast_sandbox):
    async with make_session() as client:
        workspace_id, project_id = await first_ids(client)
        ids = {"workspace_id": workspace_id, "project_id": project_id}
        image = [{"type": "image", "url": "http://sandbox.flora.local/media/assets/x/y.png"}]
        result, _ = await call(client, "run_action", {"action_id": "rotate-image", "inputs": image,
                                                      "params": {"angle": "45"}} | ids)
        assert result.is_error and "90, 180, 270" in text_of(result)
        result, _ = await call(client, "run_action", {"action_id": "blur-image", "inputs": image,
                                                      "params": {"radius": 500}} | ids)
        assert result.is_error and "0-50" in text_of(result)
        result, _ = await call(client, "run_action", {"action_id": "blur-image", "inputs": image,
                                                      "params": {"radus": 3}} | ids)
        assert result.is_error and "Did you mean 'radius'" in text_of(result)
        result, _ = await call(client, "run_action", {"action_id": "add-text-to-image", "inputs": image} | ids)
        assert result.is_error and "params.text: required" in text_of(result)
        result, _ = await call(client, "run_action", {"action_id": "rotate-image", "inputs": [
            {"type": "text", "text": "hi"}]} | ids)
        assert result.is_error and "needs a image input" in text_of(result)
        result, _ = await call(client, "run_action", {"action_id": "Rotate image", "inputs": image} | ids)
        assert result.is_error and "rotate-image" in text_of(result)
        result, _ = await call(client, "run_technique", {"technique_id": "tech_product_backdrop",
                                                         "workspace_id": workspace_id, "inputs": {"mood": "x"}})
        assert result.is_error and "inputs.product: required" in text_of(result)
    assert fast_sandbox.state.charges == []


async def test_upload_from_url_and_hosted_mode_never_reads_disk(make_session, photo, fast_sandbox):
    async with make_session() as client:
        workspace_id, project_id = await first_ids(client)
        _, run = await call(client, "start_generation", {"type": "image", "prompt": "x", "workspace_id": workspace_id,
                                                         "project_id": project_id})
        result, asset = await call(client, "upload_asset", {"url": run["outputs"][0]["url"],
                                                            "workspace_id": workspace_id})
        assert not result.is_error and asset["status"] == "ready"
    hosted = create_server(settings(), client=fast_sandbox.client(None), api_key_for=lambda ctx: "sk_sandbox_demo")
    async with Client(hosted) as client:
        result, _ = await call(client, "upload_asset", {"path": str(photo), "workspace_id": workspace_id})
        assert result.is_error and "never reads its own disk" in text_of(result)
        result, _ = await call(client, "upload_asset", {"url": "http://127.0.0.1:9/x.png",
                                                        "workspace_id": workspace_id})
        assert result.is_error and "private networks" in text_of(result)


async def test_toolsets_expose_groups_and_read_only_hides_paid_tools(fast_sandbox):
    async def names(**kw) -> set[str]:
        async with Client(create_server(settings(**kw), client=fast_sandbox.client())) as client:
            return {t.name for t in (await client.list_tools()).tools}

    assert await names(toolsets="actions") == {"list_actions", "run_action"}
    assert await names(toolsets="core,assets") >= {"upload_asset", "start_generation"}
    everything = await names()
    assert {"list_actions", "run_action", "list_techniques", "run_technique", "upload_asset"} <= everything
    read_only = await names(read_only=True)
    assert read_only == {"list_workspaces", "list_projects", "list_models", "get_run", "list_runs", "list_actions",
                         "list_techniques", "get_project", "read_canvas"}


async def test_cost_limit_covers_actions_and_techniques(make_session, fast_sandbox):
    async with make_session(max_cost_per_run=0.001) as client:
        workspace_id, project_id = await first_ids(client)
        result, _ = await call(client, "run_action", {"action_id": "split-text", "workspace_id": workspace_id,
                                                      "project_id": project_id,
                                                      "inputs": [{"type": "text", "text": "a,b"}]})
        assert result.is_error and "FLORA_MAX_COST_PER_RUN" in text_of(result) and "$0.01" in text_of(result)
        result, _ = await call(client, "run_technique", {"technique_id": "tech_headline_poster",
                                                         "workspace_id": workspace_id, "inputs": {"headline": "Hi"}})
        assert result.is_error and "FLORA_MAX_COST_PER_RUN" in text_of(result) and "$0.05" in text_of(result)
    assert fast_sandbox.state.charges == []
