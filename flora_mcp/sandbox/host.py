"""The sandbox's routes outside /api/v1: the media host that serves outputs and assets, the signed upload
URL (like a storage bucket), the canvas page canvas_url points at, health, and /_sandbox, the tests'
control panel (not part of FLORA's API)."""

from __future__ import annotations

import dataclasses

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .media import render_output
from .state import SandboxState
from .wire import error

MAX_UPLOAD = 50 * 1024 * 1024


class Host:
    """The non-API routes over one SandboxState; app.py mounts each method at its path."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

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
            # status reads (GET /runs/{id}) among the logged requests: what the polls benchmark counts
            "status_reads": sum(1 for _, method, path in self.state.request_log
                                if method == "GET" and path.startswith("/runs/")),
            "webhooks": self.state.webhook_log[-200:],
        })

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "sandbox": True})
