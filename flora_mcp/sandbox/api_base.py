"""What every /api/v1 handler group shares: the sandbox's state and FLORA's checks that recur across routes
(unknown or missing fields and ID shapes, the account owning a workspace or project, a spent idempotency
key, the 201 answer of a started run)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .state import Account, SandboxState
from .wire import ID_PATTERNS, error


class ApiRoutes:
    """Base of the handler groups (projects_api, runs_api, assets_api): handlers take (request, account)."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def _ids_problems(self, body: dict[str, Any], allowed: tuple[str, ...],
                      required: tuple[str, ...]) -> list[dict[str, str]]:
        problems = [{"field": k, "message": "Unrecognized key"} for k in body if k not in allowed]
        problems += [{"field": k, "message": "Required"} for k in required if k not in body]
        for key, pattern in ID_PATTERNS.items():
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

    def _spent_key(self, request: Request, account: Account) -> Response | None:
        key = request.headers.get("idempotency-key")
        if self.state.idempotency_mode == "replay":
            return None  # spent keys were answered by the gate (ApiGate._replayed) before the route ran
        if key and not self.state.claim_idempotency_key(account.key_fingerprint, key):
            return error(409, "idempotency_duplicate", "Idempotency key already used")
        return None

    def _started(self, run: Any, extra: dict[str, Any]) -> JSONResponse:
        return JSONResponse({"run_id": run.run_id, "type": run.run_type, "estimated_seconds": run.estimated_seconds,
                             "charged_cost": 0, "poll_url": f"{self.state.public_base_url}/api/v1/runs/{run.run_id}"}
                            | extra, status_code=201)
