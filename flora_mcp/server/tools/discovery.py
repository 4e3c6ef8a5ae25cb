"""Finding where to work and with what: workspaces, projects, models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from ..arguments import ToolArgs, TypeParam, WorkspaceParam
from ..guidance import find_model, resolve_workspace
from ..param_checks import describe_param
from ..toolcall import ToolCall
from ..tooling import ToolInputError, ToolResult, ToolSpec

if TYPE_CHECKING:
    from ...models import Model


class ListWorkspaces(ToolArgs):
    query: Annotated[str | None, Field(description="Part of a name")] = None


class ListProjects(ToolArgs):
    workspace_id: WorkspaceParam = None
    query: str | None = None  # name search
    limit: Annotated[int | None, Field(ge=1, le=100)] = None
    cursor: Annotated[str | None, Field(description="From next_cursor")] = None


class CreateProject(ToolArgs):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    workspace_id: WorkspaceParam = None


class ListModels(ToolArgs):
    type: TypeParam | None = None
    query: str | None = None  # matches ID, name, provider, capability
    model_id: Annotated[str | None, Field(description="Details of one model")] = None


async def list_workspaces(req: ListWorkspaces, call: ToolCall) -> ToolResult:
    workspaces = (await call.client.list_workspaces()).workspaces
    default = call.settings.workspace_id or (workspaces[0].workspace_id if len(workspaces) == 1 else None)
    if req.query:
        workspaces = [w for w in workspaces if req.query.lower() in w.name.lower()]
    rows = [{"workspace_id": w.workspace_id, "name": w.name, "role": w.role} for w in workspaces]
    if default:
        return ToolResult({"workspaces": rows, "default": default,
                           "note": "default: used by every tool when workspace_id is left out"})
    return ToolResult({"workspaces": rows, "note": "no default workspace: pass workspace_id, or a project_id "
                                                   "(its workspace is used)"})


async def list_projects(req: ListProjects, call: ToolCall) -> ToolResult:
    from ...models import ListProjectsRequest

    workspace_id = await resolve_workspace(call, req.workspace_id)
    page = await call.client.list_projects(ListProjectsRequest(
        workspace_id=workspace_id, query=req.query, limit=req.limit, cursor=req.cursor))
    rows = [{"project_id": p.project_id, "name": p.name} for p in page.projects]
    return ToolResult({
        "workspace_id": workspace_id,
        "projects": rows,
        "next_cursor": page.meta.next_cursor,
        "total_estimate": page.meta.total_estimate,
    })


async def create_project(req: CreateProject, call: ToolCall) -> ToolResult:
    from ...models import CreateProjectRequest

    workspace_id = await resolve_workspace(call, req.workspace_id)
    project = await call.client.create_project(CreateProjectRequest(workspace_id=workspace_id, name=req.name))
    return ToolResult({"project_id": project.project_id, "name": project.name, "workspace_id": project.workspace_id})


def compact_model(m: Model) -> dict:
    row = {
        "id": m.model_id,
        "name": m.name,
        "type": m.type,
        "provider": m.provider,
        "credits": m.estimated_credits,
        "run_seconds": m.estimated_seconds,
        "params": " ".join(describe_param(p) for p in m.params),
    }
    if m.beta:
        row["beta"] = True
    return row


async def list_models(req: ListModels, call: ToolCall) -> ToolResult:
    catalog = await call.catalog()
    if req.model_id:
        try:
            model = await find_model(call, req.model_id)
        except ToolInputError as exc:
            raise ToolInputError(f"model_id: {exc}") from None
        return ToolResult({"model": model.model_dump(exclude_none=True)})
    models = [m for m in catalog if not req.type or m.type == req.type]
    if req.query:
        q = req.query.lower()
        models = [m for m in models if q in " ".join([m.model_id, m.name, m.provider, *m.capabilities]).lower()]
    rows = [compact_model(m) for m in models]
    result = {"models": rows, "note": "pass id as model; params: name(options|min-max), * = required; credits: "
                                      f"FLORA's estimate for one output (1 credit = ${call.settings.usd_per_credit:g}; "
                                      "charges can be higher: start_generation dry_run gives estimated_usd_max to plan "
                                      "with); run_seconds: "
                                      "typical time to finish (not clip length)"}
    if not rows and req.query:
        result["note"] = f"no model matches {req.query!r}" + (f" for type {req.type}" if req.type else "")
    return ToolResult(result)


TOOLS = [
    ToolSpec("list_workspaces", "Workspaces this key can use, and the default one.",
             ListWorkspaces, list_workspaces, "core", read_only=True, idempotent=True),
    ToolSpec("list_projects", "Projects in a workspace, recent first.",
             ListProjects, list_projects, "core", read_only=True, idempotent=True),
    ToolSpec("create_project", "Create a project.",
             CreateProject, create_project, "core", read_only=False, idempotent=False),
    ToolSpec("list_models", "Models: endpoint IDs, cost, params.",
             ListModels, list_models, "core", read_only=True, idempotent=True),
]
