"""The sandbox's HTTP face: a Starlette app that answers like FLORA's public API v1.6.0.

Routes under /api/v1 follow the contract. /files serves output bytes (like FLORA's media host).
/_sandbox is the tests' control panel and is not part of the contract.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from . import media
from .catalog import MODELS, MODELS_BY_ID
from .state import Account, SandboxState

_ID_PATTERNS = {"workspace_id": re.compile(r"^ws_\S+$"), "project_id": re.compile(r"^prj_\S+$")}
_GENERATE_FIELDS = ("type", "prompt", "workspace_id", "project_id", "model", "params")
_TYPES = ("image", "video", "audio", "text")


class ConnectionDropped(Exception):
    """Raised while sending a response the `drop_after_processing` fault swallows."""


def error(status: int, code: str, message: str, fields: list[dict[str, str]] | None = None,
          headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _validation_error(fields: list[dict[str, str]]) -> JSONResponse:
    message = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return error(400, "input_validation_error", message, fields)


def build_app(state: SandboxState) -> Any:
    async def api(request: Request) -> Response:
        """Auth, rate limits and faults for every /api/v1 route, then the route itself."""
        faults = state.faults
        if faults.slow_seconds:
            await anyio.sleep(faults.slow_seconds)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return error(401, "unauthorized", "Missing bearer token")
        account = state.account_for(auth[7:].strip())
        if account is None:
            return error(401, "invalid_api_key", "Invalid API key")
        path = request.url.path.removeprefix("/api/v1")
        state.request_log.append((account.key_fingerprint, request.method, path))
        wait = state.rate_limited(account.key_fingerprint)
        if wait is not None:
            return error(429, "rate_limited", "Too many requests", headers={"Retry-After": str(int(wait + 0.999))})
        if faults.server_errors and faults.applies(path):
            faults.server_errors -= 1
            return error(503, "unknown_error", "Service temporarily unavailable")
        response = await _route(request, account, path)
        if request.method == "POST" and faults.drop_after_processing and faults.applies(path):
            faults.drop_after_processing -= 1
            request.scope.setdefault("state", {})["sandbox_drop"] = True
        return response

    async def _route(request: Request, account: Account, path: str) -> Response:
        method = request.method
        if path == "/workspaces" and method == "GET":
            return JSONResponse({"workspaces": account.workspaces})
        if path == "/projects" and method == "GET":
            return _list_projects(request, account)
        if path == "/projects" and method == "POST":
            return await _create_project(request, account)
        if path == "/models" and method == "GET":
            return _list_models(request)
        if path in ("/generate", "/runs/generation") and method == "POST":
            return await _generate(request, account)
        if path.startswith("/runs/") and method == "GET":
            run = state.runs.get(path.removeprefix("/runs/"))
            if run is None or run.account != account.key_fingerprint:
                return error(404, "not_found", "Run not found")
            return JSONResponse(state.view_run(run))
        return error(404, "not_found", f"No route for {method} {path}")

    def _list_projects(request: Request, account: Account) -> Response:
        q = request.query_params
        workspace_id = q.get("workspace_id")
        if not workspace_id:
            return _validation_error([{"field": "workspace_id", "message": "Required"}])
        if not _ID_PATTERNS["workspace_id"].match(workspace_id):
            return _validation_error([{"field": "workspace_id", "message": "Invalid workspace ID"}])
        if not any(w["workspace_id"] == workspace_id for w in account.workspaces):
            return error(404, "not_found", "Workspace not found")
        try:
            limit = int(q.get("limit", 20))
            offset = int(base64.urlsafe_b64decode(q["cursor"]).decode()) if q.get("cursor") else 0
        except ValueError:
            return _validation_error([{"field": "limit/cursor", "message": "Invalid value"}])
        if not 1 <= limit <= 100:
            return _validation_error([{"field": "limit", "message": "Number must be between 1 and 100"}])
        query = (q.get("query") or "").lower()
        matches = [
            p for p in account.projects
            if p["workspace_id"] == workspace_id and query in p["name"].lower()
        ]
        matches.sort(key=lambda p: p.get("last_modified") or p["created_at"], reverse=True)
        page = matches[offset : offset + limit]
        more = offset + limit < len(matches)
        cursor = base64.urlsafe_b64encode(str(offset + limit).encode()).decode() if more else None
        return JSONResponse({"projects": page, "meta": {"next_cursor": cursor, "total_estimate": len(matches)}})

    async def _create_project(request: Request, account: Account) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        problems = [{"field": k, "message": "Unrecognized key"} for k in body if k not in ("workspace_id", "name")]
        for key in ("workspace_id", "name"):
            if not isinstance(body.get(key), str) or not body.get(key, "").strip():
                problems.append({"field": key, "message": "Required"})
        if problems:
            return _validation_error(problems)
        if not any(w["workspace_id"] == body["workspace_id"] for w in account.workspaces):
            return error(404, "not_found", "Workspace not found")
        if replay := _spent_key(request, account):
            return replay
        now = state.clock()
        project = {
            "project_id": state.new_id("prj", account.key_fingerprint),
            "name": body["name"].strip(),
            "workspace_id": body["workspace_id"],
            "origin": "api",
            "last_modified": now,
            "created_at": now,
        }
        account.projects.append(project)
        return JSONResponse(project, status_code=201)

    def _list_models(request: Request) -> Response:
        type_ = request.query_params.get("type")
        if type_ and type_ not in _TYPES:
            return _validation_error([{"field": "type", "message": "Invalid enum value. Expected " + " | ".join(_TYPES)}])
        return JSONResponse({"models": [m for m in MODELS if not type_ or m["type"] == type_]})

    async def _generate(request: Request, account: Account) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        problems = [{"field": k, "message": "Unrecognized key"} for k in body if k not in _GENERATE_FIELDS]
        for key in ("type", "prompt", "workspace_id", "project_id"):
            if key not in body:
                problems.append({"field": key, "message": "Required"})
        if "type" in body and body["type"] not in _TYPES:
            problems.append({"field": "type", "message": "Invalid enum value. Expected " + " | ".join(_TYPES)})
        if "prompt" in body and (not isinstance(body["prompt"], str) or not body["prompt"]):
            problems.append({"field": "prompt", "message": "String must contain at least 1 character(s)"})
        for key, pattern in _ID_PATTERNS.items():
            if key in body and not (isinstance(body[key], str) and pattern.match(body[key])):
                problems.append({"field": key, "message": f"Invalid {key.split('_')[0]} ID"})
        model = body.get("model")
        if model is not None and model not in MODELS_BY_ID:
            problems.append({"field": "model", "message": "Unknown model endpoint ID"})
        elif model is not None and body.get("type") in _TYPES and MODELS_BY_ID[model]["type"] != body["type"]:
            problems.append({"field": "model", "message": f"Model is not a {body['type']} model"})
        if "params" in body and not isinstance(body["params"], dict):
            problems.append({"field": "params", "message": "Expected object"})
        if problems:
            return _validation_error(problems)
        workspace = next((w for w in account.workspaces if w["workspace_id"] == body["workspace_id"]), None)
        if workspace is None:
            return error(404, "not_found", "Workspace not found")
        if not any(p["project_id"] == body["project_id"] and p["workspace_id"] == workspace["workspace_id"]
                   for p in account.projects):
            return error(404, "not_found", "Project not found")
        if account.credits is not None and account.credits < state.estimated_cost(body):
            return error(402, "insufficient_credits", "Insufficient credits")
        if replay := _spent_key(request, account):
            return replay
        run = state.start_run(account, body)
        return JSONResponse(
            {
                "run_id": run.run_id,
                "type": "generation",
                "model": {"model_id": run.model_id},
                "estimated_seconds": run.estimated_seconds,
                "charged_cost": 0,
                "poll_url": f"{state.public_base_url}/api/v1/runs/{run.run_id}",
                "project_id": run.project_id,
            },
            status_code=201,
        )

    def _spent_key(request: Request, account: Account) -> Response | None:
        key = request.headers.get("idempotency-key")
        if key and not state.claim_idempotency_key(account.key_fingerprint, key):
            return error(409, "idempotency_duplicate", "Idempotency key already used")
        return None

    async def files(request: Request) -> Response:
        run = state.runs.get(request.path_params["run_id"])
        name = request.path_params["name"]
        output = next((o for o in (run.outputs if run else []) if o["url"].endswith(f"/{name}")), None)
        if run is None or output is None:
            return error(404, "not_found", "File not found")
        cache_key = f"{run.run_id}/{name}"
        if cache_key not in state.files:
            state.files[cache_key] = await anyio.to_thread.run_sync(_render, run, name)
        data, mime = state.files[cache_key]
        return Response(data, media_type=mime)

    async def control(request: Request) -> Response:
        """Test control panel: read and set faults and credits (not part of FLORA's API)."""
        if request.method == "POST":
            changes = await request.json()
            for key, value in changes.get("faults", {}).items():
                setattr(state.faults, key, tuple(value) if key == "only_paths" else value)
            if "credits" in changes:
                state.default_credits = changes["credits"]
                for account in state.accounts.values():
                    account.credits = changes["credits"]
        return JSONResponse({
            "charges": [{"account": a, "run_id": r, "usd": c} for a, r, c in state.charges],
            "runs": len(state.runs),
            "requests": len(state.request_log),
        })

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "sandbox": True})

    app = Starlette(routes=[
        Mount("/api/v1", routes=[Route("/{path:path}", api, methods=["GET", "POST"])]),
        Route("/files/{run_id}/{name}", files),
        Route("/_sandbox", control, methods=["GET", "POST"]),
        Route("/healthz", health),
    ])
    return _DropConnections(app)


def _render(run: Any, name: str) -> tuple[bytes, str]:
    index = int(name.split("_")[1].split(".")[0]) if "_" in name else 1
    seed = int(run.params.get("seed", 0) or 0) + index - 1 if isinstance(run.params.get("seed", 0), int) else index
    if run.type == "image":
        return media.render_png(run.prompt, media.image_size(run.params), seed=seed), "image/png"
    if run.type == "video":
        size = (640, 360) if run.params.get("aspect_ratio", "16:9") != "9:16" else (360, 640)
        return media.render_gif(run.prompt, size, seed=seed), "image/gif"
    if run.type == "audio":
        return media.render_wav(run.prompt), "audio/wav"
    return media.render_text(run.prompt, MODELS_BY_ID[run.model_id]["name"]), "text/plain; charset=utf-8"


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
