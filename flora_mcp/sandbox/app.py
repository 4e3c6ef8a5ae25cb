"""The sandbox's HTTP face: a Starlette app that answers like FLORA's public API v1.6.0.

Routes under /api/v1 follow the contract: a table of Starlette routes (_SandboxApi.app) behind
_ApiGate, the middleware that does what FLORA does around every route (the key, rate limits,
idempotent replays, and the faults tests turn on). /files serves output bytes (like FLORA's media
host). /_sandbox is the tests' control panel and is not part of the contract.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import inspect
import io
import json
import mimetypes
import re
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from .actions import ACTION_SECONDS, ACTIONS, TECHNIQUE_COST, TECHNIQUES, ActionInputError, run_action
from .canvas import MEDIA_KINDS, CanvasProblem
from .catalog import MODELS, MODELS_BY_ID
from .media import render_output
from .state import Account, SandboxState

_ID_PATTERNS = {"workspace_id": re.compile(r"^ws_\S+$"), "project_id": re.compile(r"^prj_\S+$")}
_ASSET_FIELDS = ("source", "workspace_id", "folder", "content_type", "file_name")
_GENERATE_FIELDS = ("type", "prompt", "workspace_id", "project_id", "model", "params")
_TYPES = ("image", "video", "audio", "text")
MAX_UPLOAD = 50 * 1024 * 1024


class ConnectionDropped(Exception):
    """Raised while sending a response the `drop_after_processing` fault swallows."""


def error(status: int, code: str, message: str, fields: list[dict[str, str]] | None = None,
          headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return JSONResponse({"error": body}, status_code=status, headers=headers)


FEEDBACK_KINDS = ("feature_request", "bug", "technique_request", "missing_capability")


def _validation_error(fields: list[dict[str, str]]) -> JSONResponse:
    message = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return error(400, "input_validation_error", message, fields)


def _page_window(q: Any) -> tuple[int, int] | Response:
    """A list endpoint's (offset, limit) from its `cursor` and `limit` (1-100, default 20), or the 400."""
    try:
        limit = int(q.get("limit", 20))
        offset = int(base64.urlsafe_b64decode(q["cursor"]).decode()) if q.get("cursor") else 0
    except ValueError:
        return _validation_error([{"field": "limit/cursor", "message": "Invalid value"}])
    if not 1 <= limit <= 100:
        return _validation_error([{"field": "limit", "message": "Number must be between 1 and 100"}])
    return offset, limit


def _page_meta(offset: int, limit: int, total: int) -> dict[str, Any]:
    more = offset + limit < total
    cursor = base64.urlsafe_b64encode(str(offset + limit).encode()).decode() if more else None
    return {"next_cursor": cursor, "total_estimate": total}


def _with_account(route: Route) -> Route:
    """The route with its (request, account) handler called as a Starlette endpoint."""
    handler = route.endpoint

    async def endpoint(request: Request) -> Response:
        answer = handler(request, request.state.sandbox_account)
        return await answer if inspect.isawaitable(answer) else answer

    return Route(route.path, endpoint, methods=sorted(route.methods or ()), name=route.name)


class _ApiGate:
    """What FLORA does before and after every /api/v1 route: the bearer key, the request log, rate
    limits, idempotent replays, and the faults tests turn on (slow, 5xx, dropped or late answers)."""

    def __init__(self, app: Any, state: SandboxState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state, faults = self.state, self.state.faults
        request = Request(scope, receive)
        body = await request.body()  # read once here (the sandbox's bodies are small); the route reads it again
        if faults.slow_seconds:
            await anyio.sleep(faults.slow_seconds)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            await error(401, "unauthorized", "Missing bearer token")(scope, receive, send)
            return
        account = state.account_for(auth[7:].strip())
        if account is None:
            await error(401, "invalid_api_key", "Invalid API key")(scope, receive, send)
            return
        path, post = request.url.path.removeprefix("/api/v1"), request.method == "POST"
        state.log_request(account.key_fingerprint, request.method, path)
        wait = state.rate_limited(account.key_fingerprint)
        if wait is not None:
            await error(429, "rate_limited", "Too many requests",
                        headers={"Retry-After": str(int(wait + 0.999))})(scope, receive, send)
            return
        if faults.server_errors and faults.applies(path):
            faults.server_errors -= 1
            await error(503, "unknown_error", "Service temporarily unavailable")(scope, receive, send)
            return
        scope.setdefault("state", {})["sandbox_account"] = account
        replay = self._replayed(request, account, body) if post else None
        if replay is not None:
            answer = [{"type": "http.response.start", "status": replay.status_code, "headers": replay.raw_headers},
                      {"type": "http.response.body", "body": replay.body}]
        else:
            answer = await self._route(scope, body, send)
            status, content = answer[0]["status"], b"".join(m.get("body", b"") for m in answer[1:])
            if post and 200 <= status < 300:
                self._remember_answer(request, account, body, status, content)
        if post and faults.drop_after_processing and faults.applies(path):
            faults.drop_after_processing -= 1
            scope["state"]["sandbox_drop"] = True
        if post and faults.slow_answers and faults.applies(path):
            faults.slow_answers -= 1  # processed now, answered late: past a client's timeout
            await anyio.sleep(faults.slow_answer_seconds)
        for message in answer:
            await send(message)

    async def _route(self, scope: dict, body: bytes, send: Any) -> list[dict]:
        """Run the route on the body already read; keep its answer to send after the faults."""
        answer: list[dict] = []
        sent = False

        async def receive() -> dict:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def keep(message: dict) -> None:
            answer.append(message)

        await self.app(scope, receive, keep)
        return answer

    def _replayed(self, request: Request, account: Account, body: bytes) -> Response | None:
        """FLORA's docs' behaviour (state.idempotency_mode == "replay"): a spent key with the same body
        replays the first answer; with another body, 422 idempotency_conflict."""
        key = request.headers.get("idempotency-key")
        if self.state.idempotency_mode != "replay" or not key:
            return None
        seen = self.state.answers.get((account.key_fingerprint, key))
        if seen is None:
            return None
        body_hash, status, content = seen
        if body_hash != hashlib.sha256(body).hexdigest():
            return error(422, "idempotency_conflict", "Idempotency key reused with a different request body")
        return Response(content, status_code=status, media_type="application/json",
                        headers={"idempotent-replayed": "true"})

    def _remember_answer(self, request: Request, account: Account, body: bytes, status: int, content: bytes) -> None:
        key = request.headers.get("idempotency-key")
        if self.state.idempotency_mode == "replay" and key:
            self.state.answers[(account.key_fingerprint, key)] = (hashlib.sha256(body).hexdigest(), status, content)


class _SandboxApi:
    """The sandbox's routes over one SandboxState: each handler is a method; app() is the ASGI app."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def app(self) -> Any:
        """The ASGI app: the /api/v1 routes behind _ApiGate (handlers take the request and the account),
        then the media, upload, canvas, control and health routes."""
        api_routes = [
            Route("/workspaces", self._list_workspaces, methods=["GET"]),
            Route("/projects", self._list_projects, methods=["GET"]),
            Route("/projects", self._create_project, methods=["POST"]),
            Route("/feedback", self._record_feedback, methods=["POST"]),
            Route("/projects/{project_id}", self.project_route(self._get_project), methods=["GET"]),
            Route("/projects/{project_id}/canvas", self.project_route(self._get_canvas), methods=["GET"]),
            Route("/projects/{project_id}/canvas", self.project_route(self._patch_canvas), methods=["PATCH"]),
            Route("/projects/{project_id}/nodes", self.project_route(self._get_nodes), methods=["GET"]),
            Route("/projects/{project_id}/actions", self.project_route(self._create_canvas_action), methods=["POST"]),
            Route("/projects/{project_id}/actions/{node_id}/run", self.project_route(self._run_canvas_action),
                  methods=["POST"]),
            Route("/projects/{project_id}/assets/{asset_id}/attach", self.project_route(self._attach),
                  methods=["POST"]),
            Route("/models", self._list_models, methods=["GET"]),
            Route("/generate", self._generate, methods=["POST"]),
            Route("/runs/generation", self._generate, methods=["POST"]),
            Route("/runs/action", self._action_run, methods=["POST"]),
            Route("/runs/technique", self._technique_run, methods=["POST"]),
            Route("/runs/{run_id:path}", self._get_run, methods=["GET"]),
            Route("/actions", self._list_actions, methods=["GET"]),
            Route("/techniques", self._list_techniques, methods=["GET"]),
            Route("/assets", self._asset_from_url, methods=["POST"]),
            Route("/assets/uploads", self._reserve_upload, methods=["POST"]),
            Route("/assets/{asset_id}/complete", self._complete_upload, methods=["POST"]),
            # Last: any other path or method is FLORA's JSON 404 (after the gate's auth), never Starlette's 405.
            Route("/{path:path}", self._no_route, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]),
        ]
        app = Starlette(routes=[
            Mount("/api/v1", routes=[_with_account(r) for r in api_routes],
                  middleware=[Middleware(_ApiGate, state=self.state)]),
            Route("/files/{run_id}/{name}", self.files),
            Route("/uploads/{asset_id}", self.upload, methods=["PUT"]),
            Route("/media/assets/{asset_id}/{name}", self.asset_file),
            Route("/canvas/{project_id}", self.canvas_page),
            Route("/_sandbox", self.control, methods=["GET", "POST"]),
            Route("/healthz", self.health),
        ])
        return _DropConnections(app)

    def _list_projects(self, request: Request, account: Account) -> Response:
        q = request.query_params
        workspace_id = q.get("workspace_id")
        if not workspace_id:
            return _validation_error([{"field": "workspace_id", "message": "Required"}])
        if not _ID_PATTERNS["workspace_id"].match(workspace_id):
            return _validation_error([{"field": "workspace_id", "message": "Invalid workspace ID"}])
        if denied := self._owned(account, workspace_id):
            return denied
        window = _page_window(q)
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
                             "meta": _page_meta(offset, limit, len(matches))})

    async def _create_project(self, request: Request, account: Account) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        problems = [{"field": k, "message": "Unrecognized key"} for k in body if k not in ("workspace_id", "name")]
        for key in ("workspace_id", "name"):
            if not isinstance(body.get(key), str) or not body.get(key, "").strip():
                problems.append({"field": key, "message": "Required"})
        if problems:
            return _validation_error(problems)
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

    async def _record_feedback(self, request: Request, account: Account) -> Response:
        """POST /feedback (recordFeedback): validated as FLORA's spec says; kept in state.feedback."""
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        known = {"kind", "summary", "detail", "attempted_tools", "workspace_id", "project_id", "run_id"}
        problems = [{"field": k, "message": "Unrecognized key"} for k in body if k not in known]
        if body.get("kind") not in FEEDBACK_KINDS:
            problems.append({"field": "kind", "message": f"Expected one of {', '.join(FEEDBACK_KINDS)}"})
        for key in ("summary", "detail"):
            if not isinstance(body.get(key), str) or not body[key]:
                problems.append({"field": key, "message": "Required"})
        tools = body.get("attempted_tools")
        if tools is not None and not (isinstance(tools, list) and all(isinstance(t, str) for t in tools)):
            problems.append({"field": "attempted_tools", "message": "Expected an array of strings"})
        for key, prefix in (("workspace_id", "ws_"), ("project_id", "prj_"), ("run_id", "run_")):
            value = body.get(key)
            if value is not None and not (isinstance(value, str) and re.fullmatch(rf"{prefix}\S+", value)):
                problems.append({"field": key, "message": f"Expected {prefix}…"})
        if problems:
            return _validation_error(problems)
        if refused := self._spent_key(request, account):
            return refused
        recorded = {"feedback_id": self.state.new_id("fb", account.key_fingerprint),
                    "received_at": int(self.state.clock())}
        self.state.feedback.append({**body, **recorded, "account": account.key_fingerprint})
        return JSONResponse(recorded, status_code=201)

    def _list_models(self, request: Request, account: Account) -> Response:
        type_ = request.query_params.get("type")
        if type_ and type_ not in _TYPES:
            return _validation_error([{"field": "type", "message": "Invalid enum value. Expected " + " | ".join(_TYPES)}])
        return JSONResponse({"models": [m for m in MODELS if not type_ or m["type"] == type_]})

    async def _generate(self, request: Request, account: Account) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        problems = self._ids_problems(body, _GENERATE_FIELDS, ("type", "prompt", "workspace_id", "project_id"))
        if "type" in body and body["type"] not in _TYPES:
            problems.append({"field": "type", "message": "Invalid enum value. Expected " + " | ".join(_TYPES)})
        if "prompt" in body and (not isinstance(body["prompt"], str) or not body["prompt"]):
            problems.append({"field": "prompt", "message": "String must contain at least 1 character(s)"})
        model = body.get("model")
        if model is not None and not isinstance(model, str):
            problems.append({"field": "model", "message": "Expected string"})
        elif model is not None and model not in MODELS_BY_ID:
            problems.append({"field": "model", "message": "Unknown model endpoint ID"})
        elif model is not None and body.get("type") in _TYPES and MODELS_BY_ID[model]["type"] != body["type"]:
            problems.append({"field": "model", "message": f"Model is not a {body['type']} model"})
        if "params" in body and not isinstance(body["params"], dict):
            problems.append({"field": "params", "message": "Expected object"})
        if problems:
            return _validation_error(problems)
        if denied := self._owned(account, body["workspace_id"], body["project_id"]):
            return denied
        if account.credits is not None and account.credits < self.state.estimated_cost(body):
            return error(402, "insufficient_credits", "Insufficient credits")
        if replay := self._spent_key(request, account):
            return replay
        run = self.state.start_run(account, body)
        return JSONResponse(
            {
                "run_id": run.run_id,
                "type": "generation",
                "model": {"model_id": run.model_id},
                "estimated_seconds": run.estimated_seconds,
                "charged_cost": 0,
                "poll_url": f"{self.state.public_base_url}/api/v1/runs/{run.run_id}",
                "project_id": run.project_id,
            },
            status_code=201,
        )

    def _ids_problems(self, body: dict[str, Any], allowed: tuple[str, ...],
                      required: tuple[str, ...]) -> list[dict[str, str]]:
        problems = [{"field": k, "message": "Unrecognized key"} for k in body if k not in allowed]
        problems += [{"field": k, "message": "Required"} for k in required if k not in body]
        for key, pattern in _ID_PATTERNS.items():
            if key in body and not (isinstance(body[key], str) and pattern.match(body[key])):
                problems.append({"field": key, "message": f"Invalid {key.split('_')[0]} ID"})
        return problems

    def _owned(self, account: Account, workspace_id: str, project_id: str | None = None) -> Response | None:
        if not any(w["workspace_id"] == workspace_id for w in account.workspaces):
            return error(404, "not_found", "Workspace not found")
        if project_id is not None and not any(
                p["project_id"] == project_id and p["workspace_id"] == workspace_id for p in account.projects):
            return error(404, "not_found", "Project not found")
        return None

    async def _action_run(self, request: Request, account: Account) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        problems = self._ids_problems(body, ("action_id", "workspace_id", "project_id", "inputs", "params"),
                                 ("action_id", "workspace_id", "project_id", "inputs"))
        inputs = body.get("inputs")
        if "inputs" in body and (not isinstance(inputs, list) or not inputs):
            problems.append({"field": "inputs", "message": "Array must contain at least 1 element(s)"})
        for i, item in enumerate(inputs if isinstance(inputs, list) else []):
            if not isinstance(item, dict) or item.get("type") not in _TYPES:
                problems.append({"field": f"inputs.{i}.type", "message": "Invalid enum value"})
            elif extra := [k for k in item if k not in ("type", "url", "text", "name")]:
                problems.append({"field": f"inputs.{i}.{extra[0]}", "message": "Unrecognized key"})
        if problems:
            return _validation_error(problems)
        if body["action_id"] not in ACTIONS:
            return _validation_error([{"field": "action_id", "message": "Action not available"}])
        if denied := self._owned(account, body["workspace_id"], body["project_id"]):
            return denied
        images, texts = [], []
        for i, item in enumerate(inputs):
            if item.get("url"):
                try:
                    images.append(self.state.read_url(item["url"], account))
                except LookupError as exc:
                    return _validation_error([{"field": f"inputs.{i}.url", "message": str(exc)}])
            elif item.get("text") is not None:
                texts.append(str(item["text"]))
            else:
                return _validation_error([{"field": f"inputs.{i}", "message": "Needs url or text"}])
        params = body.get("params") or {}
        try:
            produced = await anyio.to_thread.run_sync(run_action, body["action_id"], images, texts, params)
        except ActionInputError as exc:
            return _validation_error([{"field": "inputs/params", "message": str(exc)}])
        if replay := self._spent_key(request, account):
            return replay
        entry = ACTIONS[body["action_id"]][0]
        run = self.state.start_processed_run(account, run_type="action", workspace_id=body["workspace_id"],
                                        project_id=body["project_id"], label=body["action_id"], produced=produced,
                                        seconds=ACTION_SECONDS, cost=entry["charged_cost"])
        return self._started(run, {"action": {"action_id": body["action_id"]}, "project_id": run.project_id})

    async def _technique_run(self, request: Request, account: Account) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        problems = self._ids_problems(body, ("technique_id", "workspace_id", "inputs"), ("technique_id", "workspace_id", "inputs"))
        if "inputs" in body and not isinstance(body["inputs"], dict):
            problems.append({"field": "inputs", "message": "Expected object"})
        if problems:
            return _validation_error(problems)
        if denied := self._owned(account, body["workspace_id"]):
            return denied
        if body["technique_id"] not in TECHNIQUES:
            return error(404, "not_found", "Technique not found")
        entry, produce = TECHNIQUES[body["technique_id"]]
        values, images = body["inputs"], {}
        for slot in entry["inputs"]:
            value = values.get(slot["name"])
            if value is None:
                if slot["required"]:
                    return _validation_error([{"field": f"inputs.{slot['name']}", "message": "Required"}])
                continue
            if slot["type"] == "image":
                url = value.get("url") if isinstance(value, dict) else value
                try:
                    images[slot["name"]] = self.state.read_url(str(url), account)
                except LookupError as exc:
                    return _validation_error([{"field": f"inputs.{slot['name']}", "message": str(exc)}])
        try:
            produced = await anyio.to_thread.run_sync(produce, values, images)
        except ActionInputError as exc:
            return _validation_error([{"field": "inputs", "message": str(exc)}])
        if replay := self._spent_key(request, account):
            return replay
        run = self.state.start_processed_run(account, run_type="technique", workspace_id=body["workspace_id"], project_id="",
                                        label=entry["name"], produced=produced, seconds=entry["estimated_seconds"],
                                        cost=TECHNIQUE_COST)
        return self._started(run, {"technique": {"technique_id": entry["technique_id"], "name": entry["name"]}})

    def _started(self, run: Any, extra: dict[str, Any]) -> JSONResponse:
        return JSONResponse({"run_id": run.run_id, "type": run.run_type, "estimated_seconds": run.estimated_seconds,
                             "charged_cost": 0, "poll_url": f"{self.state.public_base_url}/api/v1/runs/{run.run_id}"}
                            | extra, status_code=201)

    async def _reserve_upload(self, request: Request, account: Account) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        fields = ("workspace_id", "filename", "content_type", "size")
        problems = self._ids_problems(body, fields, fields)
        if "size" in body and not (isinstance(body["size"], int) and 0 < body["size"] <= MAX_UPLOAD):
            problems.append({"field": "size", "message": f"Must be 1-{MAX_UPLOAD} bytes"})
        if problems:
            return _validation_error(problems)
        if refused := self._owned(account, body["workspace_id"]) or self._spent_key(request, account):
            return refused
        asset_id = self.state.new_id("asset", account.key_fingerprint)
        self.state.assets[asset_id] = {"account": account.key_fingerprint, "filename": body["filename"],
                                  "content_type": body["content_type"], "size": body["size"], "data": None,
                                  "status": "pending", "signature": self.state.new_id("sig", asset_id)}
        signature = self.state.assets[asset_id]["signature"]
        return JSONResponse({"asset_id": asset_id, "upload_method": "PUT", "upload_headers": {},
                             "upload_url": f"{self.state.public_base_url}/uploads/{asset_id}?signature={signature}"},
                            status_code=201)

    def _complete_upload(self, request: Request, account: Account) -> Response:
        asset_id = request.path_params["asset_id"]
        asset = self.state.assets.get(asset_id)
        if asset is None or asset["account"] != account.key_fingerprint:
            return error(404, "not_found", "Asset not found")
        if asset["data"] is None or len(asset["data"]) != asset["size"]:
            return _validation_error([{"field": "upload", "message": "Bytes missing or not the reserved size"}])
        asset["status"] = "ready"
        kind = asset["content_type"].split("/")[0]
        safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", asset["filename"])
        asset["url"] = f"{self.state.public_base_url}/media/assets/{asset_id}/{safe_name}"
        return JSONResponse({"asset_id": asset_id, "status": "ready", "content_type": asset["content_type"],
                             "size": asset["size"], "type": kind if kind in _TYPES else None,
                             "url": f"{self.state.public_base_url}/media/assets/{asset_id}/{safe_name}"})

    # --- projects and their canvas -----------------------------------------------------------------
    def _project(self, request: Request, account: Account) -> dict[str, Any] | Response:
        """The path's project, if this account may see it (missing and inaccessible look the same, as on FLORA)."""
        project_id = request.path_params["project_id"]
        if not _ID_PATTERNS["project_id"].match(project_id):
            return _validation_error([{"field": "projectId", "message": "Invalid project ID"}])
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

    def _get_project(self, request: Request, account: Account, project: dict, canvas: Any, url: str) -> Response:
        return JSONResponse(project)

    def _get_canvas(self, request: Request, account: Account, project: dict, canvas: Any, url: str) -> Response:
        return JSONResponse({"project_id": project["project_id"], "canvas_url": url, "diagram": canvas.diagram(),
                             "summary": canvas.summary()})

    async def _patch_canvas(self, request: Request, account: Account, project: dict, canvas: Any, url: str) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        problems = [{"field": k, "message": "Unrecognized key"} for k in body if k not in ("diagram", "node_params")]
        if not isinstance(body.get("diagram"), str) or not body.get("diagram"):
            problems.append({"field": "diagram", "message": "Required"})
        if problems:
            return _validation_error(problems)
        try:
            applied = canvas.apply(body["diagram"], body.get("node_params") or {}, set(MODELS_BY_ID))
        except CanvasProblem as exc:
            return _validation_error(exc.fields)
        project["last_modified"] = self.state.clock()
        return JSONResponse({"project_id": project["project_id"], "canvas_url": url, **applied})

    def _get_nodes(self, request: Request, account: Account, project: dict, canvas: Any, url: str) -> Response:
        return self._list_nodes(request, project["project_id"], canvas.media(), url)

    def _list_nodes(self, request: Request, project_id: str, nodes: list[dict[str, Any]], url: str) -> Response:
        q = request.query_params
        window = _page_window(q)
        if isinstance(window, Response):
            return window
        offset, limit = window
        return JSONResponse({"project_id": project_id, "canvas_url": url, "nodes": nodes[offset:offset + limit],
                             "meta": _page_meta(offset, limit, len(nodes))})

    def _attach(self, request: Request, account: Account, project: dict, canvas: Any, url: str) -> Response:
        asset_id = request.path_params["asset_id"]
        if not asset_id.startswith("asset_"):
            return _validation_error([{"field": "assetId", "message": "Invalid asset ID"}])
        asset = self.state.assets.get(asset_id)
        if asset is None or asset["account"] != account.key_fingerprint:
            return error(404, "not_found", "Asset not found")
        if asset["status"] != "ready":
            return _validation_error([{"field": "assetId", "message": "Asset is not ready: complete its upload first"}])
        kind = asset["content_type"].split("/")[0]
        if kind not in MEDIA_KINDS:
            return _validation_error([{"field": "assetId", "message": f"A {asset['content_type']} asset cannot go "
                                       "on a canvas (image, video, audio or text only)"}])
        if replay := self._spent_key(request, account):
            return replay
        width, height = _image_size(asset["data"]) if kind == "image" else (None, None)
        node = canvas.add(kind, asset["filename"], url=asset["url"], asset_id=asset_id, width=width, height=height)
        project["last_modified"] = self.state.clock()
        return JSONResponse({"project_id": project["project_id"], "asset_id": asset_id, "node_id": node.node_id,
                             "canvas_url": url}, status_code=201)

    async def _create_canvas_action(self, request: Request, account: Account, project: dict, canvas: Any,
                                    url: str) -> Response:
        body = await _json_body(request)
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
            return _validation_error(problems)
        if replay := self._spent_key(request, account):
            return replay
        entry = ACTIONS[body["action_id"]][0]
        node = canvas.add("action", entry["name"], action_id=body["action_id"], action_params=body.get("params") or {})
        project["last_modified"] = self.state.clock()
        return JSONResponse({"project_id": project["project_id"], "node_id": node.node_id,
                             "action_id": body["action_id"], "canvas_url": url}, status_code=201)

    async def _run_canvas_action(self, request: Request, account: Account, project: dict, canvas: Any,
                                 url: str) -> Response:
        node_id = request.path_params["node_id"]
        node = canvas.nodes.get(node_id)
        if node is None:
            return error(404, "not_found", "Canvas node not found")
        if node.kind != "action":
            return _validation_error([{"field": "nodeId", "message": f"{node_id} is a {node.kind} node, not an action"}])
        images, texts = [], []
        for source in canvas.inputs_of(node_id):
            if source.kind == "text":
                texts.append(source.url or source.label)
            elif not source.url:
                return _validation_error([{"field": "nodeId", "message": f"input {source.node_id} has no media yet"}])
            else:
                try:
                    images.append(self.state.read_url(source.url, account))
                except LookupError as exc:
                    return _validation_error([{"field": "nodeId", "message": f"input {source.node_id}: {exc}"}])
        try:
            produced = await anyio.to_thread.run_sync(run_action, node.action_id, images, texts, node.action_params)
        except ActionInputError as exc:
            hint = f": connect an input node to {node_id} (PATCH the canvas with an edge into it)"
            return _validation_error([{"field": "nodeId", "message": str(exc) + (hint if "needs" in str(exc) else "")}])
        if replay := self._spent_key(request, account):
            return replay
        entry = ACTIONS[node.action_id][0]
        run = self.state.start_processed_run(account, run_type="action", workspace_id=project["workspace_id"],
                                        project_id=project["project_id"], label=node.label, produced=produced,
                                        seconds=ACTION_SECONDS, cost=entry["charged_cost"], canvas_node=node_id)
        return self._started(run, {"model": None, "technique": None, "action": {"action_id": node.action_id},
                              "project_id": project["project_id"]})

    async def _asset_from_url(self, request: Request, account: Account) -> Response:
        """POST /assets with a source URL (FLORA copies it from an allowlisted host; here: URLs it served)."""
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        problems = self._ids_problems(body, _ASSET_FIELDS, ("source", "workspace_id"))
        problems += [{"field": k, "message": "Expected string"} for k in _ASSET_FIELDS
                     if k in body and not isinstance(body[k], str)]
        if problems:
            return _validation_error(problems)
        if body["source"] == "signed-url":
            return _validation_error([{"field": "source", "message": "The sandbox takes signed uploads through "
                                       "POST /assets/uploads; here, pass a URL it served"}])
        if denied := self._owned(account, body["workspace_id"]):
            return denied
        try:
            data = self.state.read_url(body["source"], account)
        except LookupError as exc:
            return _validation_error([{"field": "source", "message": f"Source URL is not allowlisted: {exc}"}])
        if replay := self._spent_key(request, account):
            return replay
        name = body.get("file_name") or body["source"].split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "asset"
        content_type = body.get("content_type") or mimetypes.guess_type(name)[0] or "application/octet-stream"
        asset_id = self.state.new_id("asset", account.key_fingerprint)
        safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        url = f"{self.state.public_base_url}/media/assets/{asset_id}/{safe_name}"
        self.state.assets[asset_id] = {"account": account.key_fingerprint, "filename": name, "content_type": content_type,
                                  "size": len(data), "data": data, "status": "ready", "url": url,
                                  "signature": self.state.new_id("sig", asset_id)}
        return JSONResponse({"asset_id": asset_id, "uploaded_via": "url", "url": url,
                             "workspace_id": body["workspace_id"], "visibility": "workspace", "status": "ready"},
                            status_code=201)

    def _spent_key(self, request: Request, account: Account) -> Response | None:
        key = request.headers.get("idempotency-key")
        if self.state.idempotency_mode == "replay":
            return None  # spent keys were answered by the gate (_ApiGate._replayed) before the route ran
        if key and not self.state.claim_idempotency_key(account.key_fingerprint, key):
            return error(409, "idempotency_duplicate", "Idempotency key already used")
        return None

    async def files(self, request: Request) -> Response:
        run = self.state.runs.get(request.path_params["run_id"])
        name = request.path_params["name"]
        output = next((o for o in (run.outputs if run else []) if o["url"].endswith(f"/{name}")), None)
        if run is None or output is None:
            return error(404, "not_found", "File not found")
        cache_key = f"{run.run_id}/{name}"
        if cache_key not in self.state.files:
            self.state.files[cache_key] = await anyio.to_thread.run_sync(render_output, run, name)
        data, mime = self.state.files[cache_key]
        self.state.downloads.append(cache_key)
        return Response(data, media_type=mime)

    async def upload(self, request: Request) -> Response:
        """The signed upload URL (like a storage bucket): no bearer key, the signature is the permission."""
        asset = self.state.assets.get(request.path_params["asset_id"])
        if asset is None or request.query_params.get("signature") != asset["signature"]:
            return error(403, "forbidden", "Bad or expired upload signature")
        data = await request.body()
        if len(data) > MAX_UPLOAD:
            return error(400, "input_validation_error", "Upload too large")
        asset["data"] = data
        return Response(status_code=200)

    async def asset_file(self, request: Request) -> Response:
        asset = self.state.assets.get(request.path_params["asset_id"])
        if asset is None or asset["status"] != "ready":
            return error(404, "not_found", "Asset not found")
        return Response(asset["data"], media_type=asset["content_type"])

    async def canvas_page(self, request: Request) -> Response:
        """Where canvas_url points in the sandbox: the canvas as Mermaid text (FLORA shows its editor)."""
        project_id = request.path_params["project_id"]
        if project_id not in self.state.canvases:
            return error(404, "not_found", "Canvas not found")
        return Response(self.state.canvases[project_id].diagram() + "\n", media_type="text/plain")

    async def control(self, request: Request) -> Response:
        """Test control panel: read and set faults and credits (not part of FLORA's API)."""
        if request.method == "POST":
            changes = await request.json()
            known = {f.name for f in dataclasses.fields(self.state.faults)}
            for key, value in changes.get("faults", {}).items():
                if key not in known:
                    return error(400, "input_validation_error", f"Unknown fault {key!r}; known: {sorted(known)}")
                setattr(self.state.faults, key, tuple(value) if key == "only_paths" else value)
            if "idempotency_mode" in changes:
                if changes["idempotency_mode"] not in ("conflict", "replay"):
                    return error(400, "input_validation_error", "idempotency_mode is 'conflict' or 'replay'")
                self.state.idempotency_mode = changes["idempotency_mode"]
            if "credits" in changes:
                self.state.default_credits = changes["credits"]
                for account in self.state.accounts.values():
                    account.credits = changes["credits"]
        return JSONResponse({
            "charges": [{"account": a, "run_id": r, "usd": c} for a, r, c in self.state.charges],
            "runs": len(self.state.runs),
            "requests": self.state.requests_seen,
        })

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "sandbox": True})

    # --- small handlers --------------------------------------------------------------------------------
    def _list_workspaces(self, request: Request, account: Account) -> Response:
        return JSONResponse({"workspaces": account.workspaces})

    def _list_actions(self, request: Request, account: Account) -> Response:
        return JSONResponse({"actions": [entry for entry, _ in ACTIONS.values()]})

    def _list_techniques(self, request: Request, account: Account) -> Response:
        if denied := self._owned(account, request.query_params.get("workspace_id", "")):
            return denied
        return JSONResponse({"techniques": [entry for entry, _ in TECHNIQUES.values()]})

    def _get_run(self, request: Request, account: Account) -> Response:
        run = self.state.runs.get(request.path_params["run_id"])
        if run is None or run.account != account.key_fingerprint:
            return error(404, "not_found", "Run not found")
        return JSONResponse(self.state.view_run(run))

    def _no_route(self, request: Request, account: Account) -> Response:
        return error(404, "not_found", f"No route for {request.method} {request.url.path.removeprefix('/api/v1')}")


def build_app(state: SandboxState) -> Any:
    return _SandboxApi(state).app()


def _image_size(data: bytes) -> tuple[int | None, int | None]:
    from PIL import Image

    try:
        return Image.open(io.BytesIO(data)).size
    except (OSError, ValueError):  # not an image Pillow reads: the node simply has no size
        return None, None


async def _json_body(request: Request) -> dict[str, Any] | Response:
    try:
        body = json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return error(400, "invalid_json", "Request body is not valid JSON")
    if not isinstance(body, dict):
        return error(400, "invalid_json", "Request body must be a JSON object")
    return body


class _DropConnections:
    """Sends the status line, then drops the connection before the body (fault injection)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def guarded_send(message: dict) -> None:
            if message["type"] == "http.response.body" and scope.get("state", {}).get("sandbox_drop"):
                raise ConnectionDropped("sandbox fault: connection dropped after processing")
            await send(message)

        await self.app(scope, receive, guarded_send)
