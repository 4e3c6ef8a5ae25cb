"""The sandbox's HTTP face: a Starlette app that answers like FLORA's public API v1.6.0.

Routes under /api/v1 follow the contract: a table of Starlette routes (_SandboxApi.app) whose handlers
live by concern in projects_api.py, runs_api.py and assets_api.py, behind gate.ApiGate, the middleware
that does what FLORA does around every route (the key, rate limits, idempotent replays, and the faults
tests turn on); wire.py holds FLORA's error envelope and pages.
host.py serves what is outside /api/v1: output and asset bytes (like FLORA's media host), signed uploads,
the canvas page, health, and /_sandbox, the tests' control panel (not part of the contract).
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from .assets_api import AssetRoutes
from .feedback_api import FeedbackRoutes
from .gate import ApiGate, DropConnections, with_account
from .host import Host
from .projects_api import ProjectRoutes
from .runs_api import RunRoutes
from .state import Account, SandboxState
from .wire import error


class _SandboxApi:
    """The sandbox's route table over one SandboxState; the handlers live in projects_api, runs_api,
    assets_api (the /api/v1 groups) and host (everything else)."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def app(self) -> Any:
        """The ASGI app: the /api/v1 routes behind ApiGate (handlers take the request and the account),
        then the media, upload, canvas, control and health routes."""
        projects, runs, assets = ProjectRoutes(self.state), RunRoutes(self.state), AssetRoutes(self.state)
        feedback = FeedbackRoutes(self.state)
        api_routes = [
            Route("/workspaces", projects.list_workspaces, methods=["GET"]),
            Route("/projects", projects.list_projects, methods=["GET"]),
            Route("/projects", projects.create_project, methods=["POST"]),
            Route("/feedback", feedback.record_feedback, methods=["POST"]),
            Route("/projects/{project_id}", projects.project_route(projects.get_project), methods=["GET"]),
            Route("/projects/{project_id}/canvas", projects.project_route(projects.get_canvas), methods=["GET"]),
            Route("/projects/{project_id}/canvas", projects.project_route(projects.patch_canvas), methods=["PATCH"]),
            Route("/projects/{project_id}/nodes", projects.project_route(projects.get_nodes), methods=["GET"]),
            Route("/projects/{project_id}/actions", projects.project_route(projects.create_canvas_action),
                  methods=["POST"]),
            Route("/projects/{project_id}/actions/{node_id}/run", projects.project_route(projects.run_canvas_action),
                  methods=["POST"]),
            Route("/projects/{project_id}/assets/{asset_id}/attach", projects.project_route(projects.attach),
                  methods=["POST"]),
            Route("/models", runs.list_models, methods=["GET"]),
            Route("/generate", runs.generate, methods=["POST"]),
            Route("/runs/generation", runs.generate, methods=["POST"]),
            Route("/runs/action", runs.action_run, methods=["POST"]),
            Route("/runs/technique", runs.technique_run, methods=["POST"]),
            Route("/runs/{run_id:path}", runs.get_run, methods=["GET"]),
            Route("/actions", runs.list_actions, methods=["GET"]),
            Route("/techniques", runs.list_techniques, methods=["GET"]),
            Route("/assets", assets.asset_from_url, methods=["POST"]),
            Route("/assets/uploads", assets.reserve_upload, methods=["POST"]),
            Route("/assets/{asset_id}/complete", assets.complete_upload, methods=["POST"]),
            # Last: any other path or method is FLORA's JSON 404 (after the gate's auth), never Starlette's 405.
            Route("/{path:path}", self._no_route, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]),
        ]
        host = Host(self.state)
        app = Starlette(routes=[
            Mount("/api/v1", routes=[with_account(r) for r in api_routes],
                  middleware=[Middleware(ApiGate, state=self.state)]),
            Route("/files/{run_id}/{name}", host.files),
            Route("/uploads/{asset_id}", host.upload, methods=["PUT"]),
            Route("/media/assets/{asset_id}/{name}", host.asset_file),
            Route("/canvas/{project_id}", host.canvas_page),
            Route("/_sandbox", host.control, methods=["GET", "POST"]),
            Route("/healthz", host.health),
        ])
        return DropConnections(app)

    def _no_route(self, request: Request, account: Account) -> Response:
        return error(404, "not_found", f"No route for {request.method} {request.url.path.removeprefix('/api/v1')}")


def build_app(state: SandboxState) -> Any:
    return _SandboxApi(state).app()
