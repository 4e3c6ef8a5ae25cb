"""The sandbox and the client checked against FLORA's own OpenAPI files (tests/contract/, copied
verbatim from the published v1.6.0 reference), not against our models."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import httpx2
import jsonschema
import pytest
import yaml

from flora_mcp.models import GenerateRequest
from flora_mcp.sandbox import SANDBOX_API_KEY
from tests.helpers import flora_ids

SPEC_DIR = Path(__file__).parent / "contract"


@cache
def operations() -> dict[str, dict]:
    ops = {}
    for path in SPEC_DIR.glob("*.yml"):
        spec = yaml.safe_load(path.read_text())
        for route, methods in spec["paths"].items():
            for method, op in methods.items():
                ops[op["operationId"]] = op
    return ops


def response_schema(operation_id: str, status: int) -> dict:
    return operations()[operation_id]["responses"][str(status)]["content"]["application/json"]["schema"]


def request_schema(operation_id: str) -> dict:
    return operations()[operation_id]["requestBody"]["content"]["application/json"]["schema"]


def check(instance: object, schema: dict) -> None:
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(instance)


@pytest.fixture
async def http(sandbox):
    async with httpx2.AsyncClient(transport=sandbox.transport(), base_url=sandbox.base_url,
                                  headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"}) as client:
        yield client


async def test_list_workspaces_matches_openapi(http):
    r = await http.get("/workspaces")
    assert r.status_code == 200
    check(r.json(), response_schema("listWorkspaces", 200))


@pytest.mark.parametrize("type_", [None, "image", "video", "audio", "text"])
async def test_list_models_matches_openapi(http, type_):
    r = await http.get("/models", params={"type": type_} if type_ else None)
    assert r.status_code == 200
    check(r.json(), response_schema("listModels", 200))


async def test_generate_and_every_run_state_match_openapi(http, flora, sandbox, clock):
    ws, prj = await flora_ids(flora)
    body = GenerateRequest(type="image", prompt="a mug", workspace_id=ws, project_id=prj,
                           model="t2i-flux-2-pro", params={"aspect_ratio": "4:3"}).model_dump(exclude_none=True)
    check(body, request_schema("startGeneration"))  # what our client sends is what FLORA accepts
    check(body, request_schema("createGenerationRun"))
    r = await http.post("/generate", json=body)
    assert r.status_code == 201
    check(r.json(), response_schema("startGeneration", 201))
    run_id = r.json()["run_id"]
    seen = set()
    for step in (0, 0.5, 0.5, 10):
        clock.advance(step)
        run = (await http.get(f"/runs/{run_id}")).json()
        check(run, response_schema("getRun", 200))
        seen.add(run["status"])
    assert seen == {"pending", "running", "completed"}
    r = await http.post("/runs/generation", json=body)
    assert r.status_code == 201
    check(r.json(), response_schema("createGenerationRun", 201))


async def test_failed_run_matches_openapi(http, flora, sandbox, clock):
    ws, prj = await flora_ids(flora)
    sandbox.faults.fail_runs = 1
    run_id = (await http.post("/generate", json={"type": "video", "prompt": "waves", "workspace_id": ws,
                                                 "project_id": prj})).json()["run_id"]
    clock.advance(600)
    run = (await http.get(f"/runs/{run_id}")).json()
    check(run, response_schema("getRun", 200))
    assert run["status"] == "failed" and run["error_code"] == "provider_error" and run["error_message"]


@pytest.mark.parametrize(
    ("status", "make"),
    [
        (400, lambda h, ws, prj: h.post("/generate", json={"prompt": ""})),
        (401, lambda h, ws, prj: h.get("/workspaces", headers={"Authorization": "Bearer nope"})),
        (404, lambda h, ws, prj: h.get("/runs/run_missing")),
        (402, None),
        (409, None),
        (429, None),
    ],
)
async def test_error_envelopes_match_openapi(http, flora, sandbox, status, make):
    ws, prj = await flora_ids(flora)
    body = {"type": "image", "prompt": "x", "workspace_id": ws, "project_id": prj}
    if status == 402:
        sandbox.state.default_credits = 0
        for account in sandbox.state.accounts.values():
            account.credits = 0
        r = await http.post("/generate", json=body)
    elif status == 409:
        await http.post("/generate", json=body, headers={"Idempotency-Key": "k1"})
        r = await http.post("/generate", json=body, headers={"Idempotency-Key": "k1"})
    elif status == 429:
        sandbox.faults.rate_limit = 1
        await http.get("/models")
        r = await http.get("/models")
        assert int(r.headers["Retry-After"]) >= 1
    else:
        r = await make(http, ws, prj)
    assert r.status_code == status
    op = "startGeneration" if status in (400, 402, 409) else ("getRun" if status == 404 else "listModels")
    schema = operations()[op]["responses"].get(str(status)) or operations()[op]["responses"]["400"]
    check(r.json(), schema["content"]["application/json"]["schema"])


async def test_idempotency_window_is_two_hours(http, flora, clock):
    ws, prj = await flora_ids(flora)
    body = {"type": "text", "prompt": "x", "workspace_id": ws, "project_id": prj}
    assert (await http.post("/generate", json=body, headers={"Idempotency-Key": "w"})).status_code == 201
    clock.advance(2 * 3600 - 1)
    assert (await http.post("/generate", json=body, headers={"Idempotency-Key": "w"})).status_code == 409
    clock.advance(2)
    assert (await http.post("/generate", json=body, headers={"Idempotency-Key": "w"})).status_code == 201


async def test_unknown_params_are_accepted_and_billed_like_flora(http, flora, sandbox):
    """FLORA's documented behaviour, which the server's own check must guard against."""
    ws, prj = await flora_ids(flora)
    r = await http.post("/generate", json={"type": "image", "prompt": "x", "workspace_id": ws, "project_id": prj,
                                           "model": "t2i-flux-2-pro", "params": {"aspect_ratio": "16x9", "zzz": 1}})
    assert r.status_code == 201
    assert sandbox.charged_runs() == [r.json()["run_id"]]


async def test_action_and_technique_runs_match_openapi(http, flora, sandbox, clock):
    from flora_mcp.models import ActionInput, ActionRunRequest, TechniqueRunRequest

    ws, prj = await flora_ids(flora)
    body = ActionRunRequest(action_id="split-text", workspace_id=ws, project_id=prj,
                            inputs=[ActionInput(type="text", text="a,b")], params={"delimiter": ","})
    wire = body.model_dump(exclude_none=True)
    check(wire, request_schema("createActionRun"))
    r = await http.post("/runs/action", json=wire)
    assert r.status_code == 201
    check(r.json(), response_schema("createActionRun", 201))
    technique = TechniqueRunRequest(technique_id="tech_headline_poster", workspace_id=ws,
                                    inputs={"headline": "Hello"}).model_dump()
    check(technique, request_schema("createTopLevelTechniqueRun"))
    r2 = await http.post("/runs/technique", json=technique)
    assert r2.status_code == 201
    check(r2.json(), response_schema("createTopLevelTechniqueRun", 201))
    clock.advance(60)
    for run_id in (r.json()["run_id"], r2.json()["run_id"]):
        run = (await http.get(f"/runs/{run_id}")).json()
        check(run, response_schema("getRun", 200))
        assert run["status"] == "completed" and run["outputs"]
    r = await http.post("/runs/action", json=wire | {"inputs": [{"type": "text", "text": "x", "colour": 1}]})
    assert r.status_code == 400 and r.json()["error"]["fields"][0]["field"] == "inputs.0.colour"


# --- projects, canvas, canvas actions, asset attach (projects/canvas/assets OpenAPI files) -------------
async def _placed_image(http, clock, ws: str, prj: str) -> dict:
    """A finished generation copied into an asset (POST /assets with the output URL)."""
    from flora_mcp.models import AssetFromSource

    run_id = (await http.post("/generate", json={"type": "image", "prompt": "mug", "workspace_id": ws,
                                                 "project_id": prj})).json()["run_id"]
    clock.advance(600)
    url = (await http.get(f"/runs/{run_id}")).json()["outputs"][0]["url"]
    body = AssetFromSource(source=url, workspace_id=ws, file_name="mug.png").model_dump(exclude_none=True)
    check(body, request_schema("uploadAsset"))
    r = await http.post("/assets", json=body)
    assert r.status_code == 201, r.text
    check(r.json(), response_schema("uploadAsset", 201))
    return r.json()


async def test_project_and_canvas_routes_match_openapi(http, flora, clock):
    from flora_mcp.models import CanvasActionRequest, CanvasPatch

    ws, prj = await flora_ids(flora)
    r = await http.get(f"/projects/{prj}")
    assert r.status_code == 200
    check(r.json(), response_schema("getProject", 200))
    check((await http.get("/projects", params={"workspace_id": ws})).json(), response_schema("listProjects", 200))

    empty = (await http.get(f"/projects/{prj}/canvas")).json()
    check(empty, response_schema("getProjectCanvas", 200))  # an empty canvas still has its header (minLength 1)
    assert empty["summary"]["node_count"] == 0

    asset = await _placed_image(http, clock, ws, prj)
    r = await http.post(f"/projects/{prj}/assets/{asset['asset_id']}/attach")
    assert r.status_code == 201
    check(r.json(), response_schema("attachCanvasAsset", 201))
    image_node = r.json()["node_id"]

    patch = CanvasPatch(diagram=f'graph LR\n  p["Caption (text)"]\n  {image_node} --> p',
                        node_params={"p": {"prompt": "SALE"}}).model_dump(exclude_none=True)
    check(patch, request_schema("patchProjectCanvas"))
    r = await http.patch(f"/projects/{prj}/canvas", json=patch)
    assert r.status_code == 200, r.text
    check(r.json(), response_schema("patchProjectCanvas", 200))
    assert (r.json()["created_node_count"], r.json()["created_edge_count"]) == (1, 1)

    action = CanvasActionRequest(action_id="add-text-to-image", params={"text": "SALE", "position": "center"})
    check(action.model_dump(exclude_none=True), request_schema("createCanvasAction"))
    r = await http.post(f"/projects/{prj}/actions", json=action.model_dump(exclude_none=True))
    assert r.status_code == 201, r.text
    check(r.json(), response_schema("createCanvasAction", 201))
    node = r.json()["node_id"]
    await http.patch(f"/projects/{prj}/canvas", json={"diagram": f"graph LR\n  {image_node} --> {node}\n  p --> {node}"})
    r = await http.post(f"/projects/{prj}/actions/{node}/run")
    assert r.status_code == 201, r.text
    check(r.json(), response_schema("runCanvasAction", 201))
    clock.advance(60)
    run = (await http.get(f"/runs/{r.json()['run_id']}")).json()
    check(run, response_schema("getRun", 200))
    assert run["status"] == "completed" and run["outputs"]

    nodes = (await http.get(f"/projects/{prj}/nodes")).json()
    check(nodes, response_schema("listCanvasNodes", 200))
    assert {n["type"] for n in nodes["nodes"]} == {"image", "text"}  # the action node is not a media node
    canvas = (await http.get(f"/projects/{prj}/canvas")).json()
    check(canvas, response_schema("getProjectCanvas", 200))
    assert canvas["summary"] == {"node_count": 4, "edge_count": 4, "workflow_count": 1, "isolated_node_count": 0,
                                 "group_count": 0}
    page = (await http.get(f"/projects/{prj}/nodes", params={"limit": 1})).json()
    assert len(page["nodes"]) == 1 and page["meta"]["next_cursor"]


@pytest.mark.parametrize(("method", "route", "body", "status", "field"), [
    ("PATCH", "/canvas", {"diagram": "graph LR\n  a -.-> b"}, 400, "diagram"),
    ("PATCH", "/canvas", {"diagram": "graph LR\n  ghost --> ghost2"}, 400, "diagram"),
    ("PATCH", "/canvas", {"diagram": 'graph LR\n  a["A (text)"]', "node_params": {"b": {}}}, 400, "node_params.b"),
    ("PATCH", "/canvas", {"diagram": 'graph LR\n  a["A (image)"]', "node_params": {"a": {"model": "nope"}}}, 400,
     "node_params.a.model"),
    ("PATCH", "/canvas", {"diagram": 'graph LR\n  a["A"]'}, 400, "diagram"),
    ("PATCH", "/canvas", {"nodes": []}, 400, "nodes"),
    ("POST", "/actions", {"action_id": "make-coffee"}, 400, "action_id"),
    ("POST", "/actions/n404/run", None, 404, None),
    ("POST", "/assets/asset_missing/attach", None, 404, None),
    ("GET", "", None, 404, None),
], ids=[
    "dotted-edge", "unknown-nodes", "params-for-missing-node", "unknown-model", "node-without-kind", "nodes-field",
    "unknown-action", "missing-action-node", "missing-asset", "project-404"
])
async def test_canvas_errors_match_openapi(http, flora, method, route, body, status, field):
    _, prj = await flora_ids(flora)
    project = "prj_not_mine" if route == "" else prj
    r = await http.request(method, f"/projects/{project}{route}", json=body)
    assert r.status_code == status, r.text
    op = {"/canvas": "patchProjectCanvas", "/actions": "createCanvasAction"}.get(route, "getProject")
    check(r.json(), operations()[op]["responses"][str(status)]["content"]["application/json"]["schema"])
    if field:
        assert r.json()["error"]["fields"][0]["field"] == field
    if method == "PATCH":  # a refused patch changes nothing
        assert (await http.get(f"/projects/{prj}/canvas")).json()["summary"]["node_count"] == 0


async def test_asset_from_url_refuses_urls_the_sandbox_did_not_serve(http, flora):
    ws, _ = await flora_ids(flora)
    r = await http.post("/assets", json={"source": "https://example.com/x.png", "workspace_id": ws})
    assert r.status_code == 400 and r.json()["error"]["fields"][0]["field"] == "source"
    check(r.json(), operations()["uploadAsset"]["responses"]["400"]["content"]["application/json"]["schema"])
