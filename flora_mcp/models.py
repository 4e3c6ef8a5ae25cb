"""Typed shapes of the FLORA public API (v1.6.0), as in tests/contract/CONTRACT.md and FLORA's OpenAPI
files beside it (tests/test_contract.py holds the sandbox to them).

Request models forbid unknown fields (the API sets `additionalProperties: false`); response models
ignore unknown fields so a newer FLORA does not break an older client.

Assumptions where the published reference is silent are listed in one comment block below.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ._ids import (  # re-exported: the contract's names live with its models
    ASSET_ID_PATTERN,
    PROJECT_ID_PATTERN,
    RUN_ID_PATTERN,
    TECHNIQUE_ID_PATTERN,
    WORKSPACE_ID_PATTERN,
    GenerationType,
)

# --- Assumptions the contract does not spell out (keep them here, and only here) -------------------
# Documentation for readers of the models below; no code reads it.
# - create_project: POST /projects with body {workspace_id, name}; 201 returns one Project object (the Projects
#   area is named in the reference index but its OpenAPI file is not in the contract).
# - usd_per_credit: models give estimated_credits; the guard needs dollars, so estimates convert credits to USD
#   at FLORA_USD_PER_CREDIT (default 0.01).
# - project_page_default: GET /projects returns 20 projects when `limit` is omitted (the documented 1-100 range).
# - list_actions: GET /actions returns {actions: [Action]}; an Action as in CONTRACT.md 'Other areas' (the
#   contract names the fields of these areas, not their envelopes).
# - list_techniques: GET /techniques?workspace_id= returns {techniques: [Technique]}; a Technique has
#   technique_id (tech_…), name, description and inputs [{name, type, required, description}].
# - technique_runs: POST /runs/technique takes the Idempotency-Key header like every POST (its schema has
#   additionalProperties: false and no idempotency_key field); see idempotency.py.
# - canvas_node_ids: a canvas node's node_id (GET /nodes, attach, canvas actions) is the ID the Mermaid diagram
#   shows for it. FLORA documents node IDs as unprefixed and patches as referencing nodes by Mermaid ID; the
#   sandbox uses one ID for both. GET /projects/{id} carries no canvas URL; the canvas endpoints do.
# - assets: POST /assets/uploads {workspace_id, filename, content_type, size} -> {asset_id, upload_url,
#   upload_method, upload_headers}; the bytes go to upload_url; POST /assets/{asset_id}/complete ->
#   Asset {asset_id, status, url, type, content_type, size}.

# --- ID types: the contract's prefixes, with bodies limited to [A-Za-z0-9_-] (see _ids) ---------------
WorkspaceId = Annotated[str, Field(pattern=WORKSPACE_ID_PATTERN)]
ProjectId = Annotated[str, Field(pattern=PROJECT_ID_PATTERN)]
RunId = Annotated[str, Field(pattern=RUN_ID_PATTERN)]
AssetId = Annotated[str, Field(pattern=ASSET_ID_PATTERN)]

RunStatus = Literal["pending", "running", "completed", "failed"]
OutputType = Literal["imageUrl", "videoUrl", "audioUrl", "text", "documentUrl"]
ParamType = Literal["string", "string[]", "bool", "int", "int?", "seed", "float", "dict"]


# defer_build: a model's validator is built on first use, not at import, which keeps these ~20
# classes off the stdio server's start-up path (measured: 26 ms of import time, eager).
# hide_input_in_errors: a validation error never repeats the value it got (an echoed key, say).
class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True, hide_input_in_errors=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True, hide_input_in_errors=True)


# --- Workspaces and projects -------------------------------------------------------------------------
class Workspace(_Response):
    workspace_id: WorkspaceId
    name: str
    created_at: int | None = None
    role: str


class WorkspaceList(_Response):
    workspaces: list[Workspace]


class Project(_Response):
    project_id: ProjectId
    name: str
    workspace_id: WorkspaceId
    origin: str | None = None
    last_modified: float | None = None
    created_at: float


class PageMeta(_Response):
    next_cursor: str | None = None
    total_estimate: int | None = None


class ProjectPage(_Response):
    projects: list[Project]
    meta: PageMeta = PageMeta()


class ListProjectsRequest(_Request):
    workspace_id: WorkspaceId
    limit: Annotated[int, Field(ge=1, le=100)] | None = None
    cursor: str | None = None
    query: str | None = None


class CreateProjectRequest(_Request):
    workspace_id: WorkspaceId
    name: Annotated[str, Field(min_length=1, max_length=200)]


# --- Feedback ----------------------------------------------------------------------------------------
FeedbackKind = Literal["feature_request", "bug", "technique_request", "missing_capability"]


class FeedbackRequest(_Request):
    kind: FeedbackKind
    summary: Annotated[str, Field(min_length=1)]
    detail: Annotated[str, Field(min_length=1)]
    attempted_tools: list[str] | None = None
    workspace_id: WorkspaceId | None = None
    project_id: ProjectId | None = None
    run_id: RunId | None = None


class FeedbackRecorded(_Response):
    feedback_id: Annotated[str, Field(pattern=r"^fb_\S+$")]
    received_at: int


# --- Models ------------------------------------------------------------------------------------------
class ParamOption(_Response):
    label: str
    value: str
    description: str | None = None


class NumericProperty(_Response):
    min: float
    max: float
    default: float


class ModelParam(_Response):
    name: str
    type: ParamType
    required: bool
    default: Any = None
    min: float | None = None
    max: float | None = None
    label: str | None = None
    description: str | None = None
    options: list[ParamOption] | None = None
    properties: dict[str, NumericProperty] | None = None


class Model(_Response):
    model_id: Annotated[str, Field(min_length=1)]
    name: str
    type: GenerationType
    provider: str
    capabilities: list[str]
    estimated_credits: Annotated[int, Field(ge=0)]
    estimated_seconds: Annotated[int, Field(ge=0)]
    params: list[ModelParam]
    beta: bool = False


class ModelList(_Response):
    models: list[Model]


# --- Generations and runs ----------------------------------------------------------------------------
class GenerateRequest(_Request):
    """Body of POST /generate (and POST /runs/generation)."""

    type: GenerationType
    prompt: Annotated[str, Field(min_length=1)]
    workspace_id: WorkspaceId
    project_id: ProjectId
    model: Annotated[str, Field(min_length=1)] | None = None
    params: dict[str, Any] | None = None
    callback_url: str | None = None  # FLORA POSTs run.completed / run.failed here (https, public)


class ModelRef(_Response):
    model_id: str


class RunStarted(_Response):
    """201 answer of POST /generate."""

    run_id: RunId
    type: Literal["generation", "technique", "action"]
    estimated_seconds: Annotated[int, Field(ge=0)] | None
    charged_cost: Annotated[float, Field(ge=0)]
    model: ModelRef | None = None
    poll_url: str | None = None
    project_id: str | None = None


class RunOutput(_Response):
    output_id: str
    type: OutputType
    url: str


class Run(_Response):
    """GET /runs/{runId}."""

    run_id: RunId
    status: RunStatus
    progress: float
    created_at: float
    started_at: float | None = None
    completed_at: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    charged_cost: float | None = None
    poll_url: str | None = None
    outputs: list[RunOutput] = []

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed")


# --- Actions, techniques, assets ("Other areas"; see the assumptions above) -----------------------------
MediaType = Literal["image", "video", "audio", "text"]


class Slot(_Response):
    name: str
    type: MediaType
    required: bool = True
    description: str | None = None


class ActionParam(_Response):
    key: str
    type: str  # e.g. number, string, boolean, select, color
    required: bool = False  # not in the contract's field list; absent means optional
    label: str | None = None
    default_value: Any = None
    available_values: list[Any] | None = None
    min: float | None = None
    max: float | None = None
    step: float | None = None


class Action(_Response):
    action_id: str
    name: str
    description: str | None = None
    language: str | None = None
    charged_cost: float | None = None
    inputs: list[Slot] = []
    outputs: list[Slot] = []
    params: list[ActionParam] = []


class ActionList(_Response):
    actions: list[Action]


class ActionInput(_Request):
    type: MediaType
    url: str | None = None
    text: str | None = None
    name: str | None = None


class ActionRunRequest(_Request):
    """Body of POST /runs/action."""

    action_id: Annotated[str, Field(min_length=1)]
    workspace_id: WorkspaceId
    project_id: ProjectId
    inputs: Annotated[list[ActionInput], Field(min_length=1)]
    params: dict[str, Any] | None = None


class Technique(_Response):
    technique_id: Annotated[str, Field(pattern=TECHNIQUE_ID_PATTERN)]
    name: str
    description: str | None = None
    inputs: list[Slot] = []
    estimated_seconds: int | None = None
    run_cost: Annotated[float, Field(ge=0)] | None = None  # USD per run (required in the contract)


class TechniqueList(_Response):
    techniques: list[Technique]


class TechniqueRunRequest(_Request):
    """Body of POST /runs/technique."""

    technique_id: Annotated[str, Field(pattern=TECHNIQUE_ID_PATTERN)]
    workspace_id: WorkspaceId
    inputs: dict[str, Any]


class UploadRequest(_Request):
    workspace_id: WorkspaceId
    filename: Annotated[str, Field(min_length=1)]
    content_type: str
    size: Annotated[int, Field(ge=1)]


class UploadReservation(_Response):
    asset_id: AssetId
    upload_url: str
    upload_method: str = "PUT"
    upload_headers: dict[str, str] = {}


class Asset(_Response):
    asset_id: AssetId
    status: str
    url: str | None = None
    type: MediaType | None = None
    content_type: str | None = None
    size: int | None = None


# --- Canvas (openapi/flora-fauna-projects-api and -canvas-api; see the assumptions above) ---------------
class CanvasSummary(_Response):
    node_count: int = 0
    edge_count: int = 0
    workflow_count: int = 0
    isolated_node_count: int = 0
    group_count: int = 0


class Canvas(_Response):
    """GET /projects/{projectId}/canvas: the canvas as a Mermaid flowchart."""

    project_id: ProjectId
    canvas_url: str
    diagram: str
    summary: CanvasSummary = CanvasSummary()


class CanvasPatch(_Request):
    """Body of PATCH /projects/{projectId}/canvas. node_params: per Mermaid node ID (prompt, model,
    content_url, aspect_ratio, resolution, model_parameters; FLORA leaves the object open)."""

    diagram: Annotated[str, Field(min_length=1)]
    node_params: dict[str, dict[str, Any]] | None = None


class CanvasPatched(_Response):
    project_id: ProjectId
    canvas_url: str
    diagram: str
    created_node_count: int
    created_edge_count: int
    warnings: list[str] = []


class CanvasNode(_Response):
    node_id: Annotated[str, Field(min_length=1)]
    type: MediaType
    label: str | None = None
    asset_id: str | None = None
    url: str | None = None  # the output URL, or a text node's text
    width: int | None = None
    height: int | None = None


class CanvasNodePage(_Response):
    project_id: ProjectId
    canvas_url: str
    nodes: list[CanvasNode]
    meta: PageMeta = PageMeta()


class AssetFromSource(_Request):
    """Body of POST /assets: copy a file FLORA can reach (an allowlisted https URL, e.g. a run output)."""

    source: Annotated[str, Field(min_length=1)]
    workspace_id: WorkspaceId
    file_name: str | None = None
    content_type: str | None = None
    folder: str | None = None


class CreatedAsset(_Response):
    asset_id: str
    url: str | None = None
    status: str
    workspace_id: str | None = None


class AttachedAsset(_Response):
    project_id: ProjectId
    asset_id: str
    node_id: str
    canvas_url: str


class CanvasActionRequest(_Request):
    """Body of POST /projects/{projectId}/actions."""

    action_id: Annotated[str, Field(min_length=1)]
    params: dict[str, Any] | None = None


class CanvasAction(_Response):
    project_id: ProjectId
    node_id: str
    action_id: str
    canvas_url: str
