"""/api/v1 workspaces, projects and their canvas: listing and creating projects, reading and patching the
canvas (Mermaid), its nodes, attaching assets, and canvas action nodes and their runs."""

from __future__ import annotations

import inspect
import io
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .actions import ACTION_SECONDS, ACTIONS, ActionInputError, run_action
from .api_base import ApiRoutes
from .canvas import MEDIA_KINDS, CanvasProblem
from .catalog import MODELS_BY_ID
from .state import Account
from .wire import ID_PATTERNS, error, json_body, page_meta, page_window, validation_error


class ProjectRoutes(ApiRoutes):
    """Workspaces, projects and canvases; /projects/{project_id}/… handlers go through project_route."""

    def list_workspaces(self, request: Request, account: Account) -> Response:
        return JSONResponse({"workspaces": account.workspaces})

    def list_projects(self, request: Request, account: Account) -> Response:
        q = request.query_params
        workspace_id = q.get("workspace_id")
        if not workspace_id:
            return validation_error([{"field": "workspace_id", "message": "Required"}])
        if not ID_PATTERNS["workspace_id"].match(workspace_id):
            return validation_error([{"field": "workspace_id", "message": "Invalid workspace ID"}])
        if denied := self._owned(account, workspace_id):
            return denied
        window = page_window(q)
        if isinstance(window, Response):
            return window
        offset, limit = window
        query = (q.get("query") or "").lower()
        matches = [
            p for p in account.projects
            if p["workspace_id"] == workspace_id and query in p["name"].lower()
        ]
        matches.sort(key=lambda p: p.get("last_modified") or p["created_at"], reverse=True)
        return JSONResponse({"projects": matches[offset:offset + limit],
                             "meta": page_meta(offset, limit, len(matches))})

    async def create_project(self, request: Request, account: Account) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        problems = [{"field": k, "message": "Unrecognized key"} for k in body if k not in ("workspace_id", "name")]
        for key in ("workspace_id", "name"):
            if not isinstance(body.get(key), str) or not body.get(key, "").strip():
                problems.append({"field": key, "message": "Required"})
        if problems:
            return validation_error(problems)
        if refused := self._owned(account, body["workspace_id"]) or self._spent_key(request, account):
            return refused
        now = self.state.clock()
        project = {
            "project_id": self.state.new_id("prj", account.key_fingerprint),
            "name": body["name"].strip(),
            "workspace_id": body["workspace_id"],
            "origin": "api",
            "last_modified": now,
            "created_at": now,
        }
        account.projects.append(project)
        return JSONResponse(project, status_code=201)

    def _project(self, request: Request, account: Account) -> dict[str, Any] | Response:
        """The path's project, if this account may see it (missing and inaccessible look the same, as on FLORA)."""
        project_id = request.path_params["project_id"]
        if not ID_PATTERNS["project_id"].match(project_id):
            return validation_error([{"field": "projectId", "message": "Invalid project ID"}])
        project = next((p for p in account.projects if p["project_id"] == project_id), None)
        if project is None:
            return error(404, "not_found", "Project not found")
        return project

    def project_route(self, handler: Any) -> Any:
        """A /projects/{project_id}/… handler, called with the project, its canvas and its canvas URL."""

        async def endpoint(request: Request, account: Account) -> Response:
            project = self._project(request, account)
            if isinstance(project, Response):
                return project
            project_id = project["project_id"]
            canvas, url = self.state.canvas(project_id), self.state.canvas_url(project_id)
            answer = handler(request, account, project, canvas, url)
            return await answer if inspect.isawaitable(answer) else answer

        return endpoint

    def get_project(self, request: Request, account: Account, project: dict, canvas: Any, url: str) -> Response:
        return JSONResponse(project)

    def get_canvas(self, request: Request, account: Account, project: dict, canvas: Any, url: str) -> Response:
        return JSONResponse({"project_id": project["project_id"], "canvas_url": url, "diagram": canvas.diagram(),
                             "summary": canvas.summary()})

    async def patch_canvas(self, request: Request, account: Account, project: dict, canvas: Any, url: str) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        problems = [{"field": k, "message": "Unrecognized key"} for k in body if k not in ("diagram", "node_params")]
        if not isinstance(body.get("diagram"), str) or not body.get("diagram"):
            problems.append({"field": "diagram", "message": "Required"})
        if problems:
            return validation_error(problems)
        try:
            applied = canvas.apply(body["diagram"], body.get("node_params") or {}, set(MODELS_BY_ID))
        except CanvasProblem as exc:
            return validation_error(exc.fields)
        project["last_modified"] = self.state.clock()
        return JSONResponse({"project_id": project["project_id"], "canvas_url": url, **applied})

    def get_nodes(self, request: Request, account: Account, project: dict, canvas: Any, url: str) -> Response:
        return self._list_nodes(request, project["project_id"], canvas.media(), url)

    def _list_nodes(self, request: Request, project_id: str, nodes: list[dict[str, Any]], url: str) -> Response:
        q = request.query_params
        window = page_window(q)
        if isinstance(window, Response):
            return window
        offset, limit = window
        return JSONResponse({"project_id": project_id, "canvas_url": url, "nodes": nodes[offset:offset + limit],
                             "meta": page_meta(offset, limit, len(nodes))})

    def attach(self, request: Request, account: Account, project: dict, canvas: Any, url: str) -> Response:
        asset_id = request.path_params["asset_id"]
        if not asset_id.startswith("asset_"):
            return validation_error([{"field": "assetId", "message": "Invalid asset ID"}])
        asset = self.state.assets.get(asset_id)
        if asset is None or asset["account"] != account.key_fingerprint:
            return error(404, "not_found", "Asset not found")
        if asset["status"] != "ready":
            return validation_error([{"field": "assetId", "message": "Asset is not ready: complete its upload first"}])
        kind = asset["content_type"].split("/")[0]
        if kind not in MEDIA_KINDS:
            return validation_error([{"field": "assetId", "message": f"A {asset['content_type']} asset cannot go "
                                       "on a canvas (image, video, audio or text only)"}])
        if replay := self._spent_key(request, account):
            return replay
        width, height = _image_size(asset["data"]) if kind == "image" else (None, None)
        node = canvas.add(kind, asset["filename"], url=asset["url"], asset_id=asset_id, width=width, height=height)
        project["last_modified"] = self.state.clock()
        return JSONResponse({"project_id": project["project_id"], "asset_id": asset_id, "node_id": node.node_id,
                             "canvas_url": url}, status_code=201)

    async def create_canvas_action(self, request: Request, account: Account, project: dict, canvas: Any,
                                    url: str) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        problems = [{"field": k, "message": "Unrecognized key"} for k in body if k not in ("action_id", "params")]
        if "action_id" not in body:
            problems.append({"field": "action_id", "message": "Required"})
        elif body["action_id"] not in ACTIONS:
            problems.append({"field": "action_id", "message": "Action not available"})
        if "params" in body and not isinstance(body["params"], dict):
            problems.append({"field": "params", "message": "Expected object"})
        if problems:
            return validation_error(problems)
        if replay := self._spent_key(request, account):
            return replay
        entry = ACTIONS[body["action_id"]][0]
        node = canvas.add("action", entry["name"], action_id=body["action_id"], action_params=body.get("params") or {})
        project["last_modified"] = self.state.clock()
        return JSONResponse({"project_id": project["project_id"], "node_id": node.node_id,
                             "action_id": body["action_id"], "canvas_url": url}, status_code=201)

    async def run_canvas_action(self, request: Request, account: Account, project: dict, canvas: Any,
                                 url: str) -> Response:
        node_id = request.path_params["node_id"]
        node = canvas.nodes.get(node_id)
        if node is None:
            return error(404, "not_found", "Canvas node not found")
        if node.kind != "action":
            return validation_error([{"field": "nodeId", "message": f"{node_id} is a {node.kind} node, not an action"}])
        images, texts = [], []
        for source in canvas.inputs_of(node_id):
            if source.kind == "text":
                texts.append(source.url or source.label)
            elif not source.url:
                return validation_error([{"field": "nodeId", "message": f"input {source.node_id} has no media yet"}])
            else:
                try:
                    images.append(self.state.read_url(source.url, account))
                except LookupError as exc:
                    return validation_error([{"field": "nodeId", "message": f"input {source.node_id}: {exc}"}])
        try:
            produced = await anyio.to_thread.run_sync(run_action, node.action_id, images, texts, node.action_params)
        except ActionInputError as exc:
            hint = f": connect an input node to {node_id} (PATCH the canvas with an edge into it)"
            return validation_error([{"field": "nodeId", "message": str(exc) + (hint if "needs" in str(exc) else "")}])
        if replay := self._spent_key(request, account):
            return replay
        entry = ACTIONS[node.action_id][0]
        run = self.state.start_processed_run(account, run_type="action", workspace_id=project["workspace_id"],
                                        project_id=project["project_id"], label=node.label, produced=produced,
                                        seconds=ACTION_SECONDS, cost=entry["charged_cost"], canvas_node=node_id)
        return self._started(run, {"model": None, "technique": None, "action": {"action_id": node.action_id},
                              "project_id": project["project_id"]})


def _image_size(data: bytes) -> tuple[int | None, int | None]:
    from PIL import Image

    try:
        return Image.open(io.BytesIO(data)).size
    except (OSError, ValueError):  # not an image Pillow reads: the node simply has no size
        return None, None
