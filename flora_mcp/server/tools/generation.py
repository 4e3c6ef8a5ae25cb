"""Starting generations and following runs to their outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import anyio
from pydantic import Field, ValidationError, WithJsonSchema

from ..._ids import GENERATION_TYPES, RUN_ID_PATTERN, new_idempotency_key
from ...errors import AcceptedRunLostError, FloraError
from .._registry import ToolInputError, ToolResult, ToolSpec
from ..costs import guard_cost
from ..guidance import explain, find_model, resolve_project, resolve_workspace
from ..paramcheck import check_params
from ..params import (PARAMS_SCHEMA, ModelParam, ParamsParam, PreviewsParam, ProjectParam, PromptParam, RunIdParam,
                      ToolArgs, TypeParam, WaitParam, WorkspaceParam)
from ..runs import describe_run, run_once, start_once, wait_budget
from ..session import ToolCall
from ..waiting import follow

if TYPE_CHECKING:
    from ...models import GenerateRequest, Model

MAX_BATCH = 20


class GenerationItem(ToolArgs):
    type: TypeParam
    prompt: PromptParam
    model: ModelParam = None
    params: ParamsParam = None
    workspace_id: WorkspaceParam = None
    project_id: ProjectParam = None


class StartGeneration(GenerationItem):
    idempotency_key: Annotated[str | None, Field(description="Same key: same run")] = None
    wait_seconds: WaitParam = None
    dry_run: Annotated[bool | None, Field(description="Check and estimate only")] = None
    previews: PreviewsParam = None


class StartGenerations(ToolArgs):
    # Each item is checked against GenerationItem on its own, so one bad item is reported in its row
    # while the others start. Published compactly: the full item schema would repeat start_generation's.
    items: Annotated[
        list[dict[str, Any]],
        Field(min_length=1, max_length=MAX_BATCH),
        WithJsonSchema({"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": {
            "type": "object", "required": ["type", "prompt"], "description": "start_generation args",
            "properties": {"type": {"enum": list(GENERATION_TYPES), "type": "string"}, "prompt": {"type": "string"},
                           "model": {"type": ["string", "null"]}, "params": PARAMS_SCHEMA}}}),
    ]
    workspace_id: WorkspaceParam = None
    project_id: ProjectParam = None
    wait_seconds: WaitParam = None
    previews: PreviewsParam = None


class GetRun(ToolArgs):
    run_id: Annotated[
        RunIdParam | Annotated[list[RunIdParam], Field(min_length=1, max_length=MAX_BATCH)],
        WithJsonSchema({"description": "From start_generation(s); one or a list", "anyOf": [
            {"type": "string", "pattern": RUN_ID_PATTERN},
            {"type": "array", "items": {"type": "string", "pattern": RUN_ID_PATTERN}, "maxItems": MAX_BATCH}]}),
    ]
    wait_seconds: WaitParam = None
    previews: PreviewsParam = None


# --- preparing a start: everything that can be checked before money is spent ------------------------
class _Prepared:
    def __init__(self, request: GenerateRequest, model: Model | None, estimate_usd: float | None) -> None:
        self.request = request
        self.model = model
        self.estimate_usd = estimate_usd


async def _prepare(call: ToolCall, item: GenerationItem, workspace_id: str | None, project_id: str | None) -> _Prepared:
    workspace_id = await resolve_workspace(call, item.workspace_id or workspace_id, item.project_id or project_id)
    project_id = await resolve_project(call, workspace_id, item.project_id or project_id)
    model = await find_model(call, item.model, item.type) if item.model else None
    if item.params and model is None:
        raise ToolInputError("params belong to a model: pass model=<endpoint ID from list_models> with params")
    if model is not None:
        problems = check_params(model, item.params)
        if problems:
            raise ToolInputError("; ".join(problems) + ". Nothing was started or charged")
    from ...models import GenerateRequest

    request = GenerateRequest(type=item.type, prompt=item.prompt, workspace_id=workspace_id, project_id=project_id,
                              model=item.model, params=item.params or None)
    estimate = round(model.estimated_credits * call.settings.usd_per_credit, 4) if model else None
    return _Prepared(request, model, estimate)


# --- tools ---------------------------------------------------------------------------------------
async def start_generation(req: StartGeneration, call: ToolCall) -> ToolResult:
    prepared = await _prepare(call, req, None, None)
    if req.dry_run:
        model = prepared.model
        return ToolResult({
            "dry_run": True, "params_ok": True, "request": prepared.request.model_dump(exclude_none=True),
            "estimated_credits": model.estimated_credits if model else None,
            "estimated_usd": prepared.estimate_usd, "estimated_seconds": model.estimated_seconds if model else None,
            "note": "estimates can be far below the final charge" if model else "no model: FLORA picks one",
        })
    if req.idempotency_key not in call.user.started:  # a repeated key returns its run: nothing to guard
        await guard_cost(call, prepared.estimate_usd, "Generation")
    result = await run_once(call, lambda key: call.client.start_generation(prepared.request, idempotency_key=key),
                            req.wait_seconds, req.idempotency_key)
    if prepared.estimate_usd is not None:
        result.structured["estimated_usd"] = prepared.estimate_usd
    return result


async def get_run(req: GetRun, call: ToolCall) -> ToolResult:
    run_ids = [req.run_id] if isinstance(req.run_id, str) else list(dict.fromkeys(req.run_id))
    runs = await follow(call, run_ids, wait_budget(call, req.wait_seconds))
    described = [await describe_run(call, run, run_id) for run, run_id in zip(runs, run_ids)]
    if isinstance(req.run_id, str):
        row, blocks = described[0]
        if isinstance(runs[0], FloraError):
            raise runs[0]
        return ToolResult(row, content=blocks)
    return _batch_result([row for row, _ in described], [b for _, blocks in described for b in blocks])


def _batch_result(rows: list[dict[str, Any]], blocks: list) -> ToolResult:
    """One row per item or run. The total is final only when every started run has settled."""
    settled = [r for r in rows if r.get("status") in ("completed", "failed")]
    unfinished = [r["run_id"] for r in rows if r.get("status") in ("pending", "running", "started")]
    lost = [r for r in rows if r.get("status") == "accepted"]  # started, but their run IDs are unknown
    total = round(sum(r.get("charged_cost", 0.0) for r in settled), 4)
    summary: dict[str, Any] = {
        "runs": rows,
        "finished": len(settled),
        "of": len(settled) + len(unfinished) + len(lost),
        ("charged_cost_min" if unfinished or lost else "charged_cost"): total,
    }
    if unfinished:
        summary["next"] = f"call get_run with run_id={unfinished} to follow the {len(unfinished)} unfinished runs"
    return ToolResult(summary, content=blocks)


async def start_generations(req: StartGenerations, call: ToolCall) -> ToolResult:
    """Start 1-20 generations at once: bad items are reported, good ones start; one row per item."""
    prepared: list[_Prepared | str] = []
    for raw in req.items:
        try:
            try:
                item = GenerationItem.model_validate(raw)
            except ValidationError as exc:
                raise ToolInputError(await explain(exc, raw, call, GenerationItem)) from None
            prepared.append(await _prepare(call, item, req.workspace_id, req.project_id))
        except (ToolInputError, FloraError) as exc:
            prepared.append(str(exc))
    good = [p for p in prepared if isinstance(p, _Prepared)]
    if good:
        estimates = [p.estimate_usd for p in good]
        total = None if any(e is None for e in estimates) else sum(estimates)  # type: ignore[misc]
        await guard_cost(call, total, f"Batch of {len(good)}")
    rows: list[dict[str, Any]] = [{} for _ in prepared]

    async def start(index: int, item: _Prepared) -> None:
        try:  # one key per item, reused by the client on every retry
            run_id = await start_once(call, new_idempotency_key(),
                                      lambda key: call.client.start_generation(item.request, idempotency_key=key))
            rows[index] = {"item": index, "run_id": run_id, "status": "started"}
        except AcceptedRunLostError:
            rows[index] = {"item": index, "status": "accepted", "run_id": None,
                           "note": "accepted once; its run ID was lost in transit; do not restart it"}
        except FloraError as exc:
            rows[index] = {"item": index, "error": str(exc)}

    async with anyio.create_task_group() as tg:
        for index, item in enumerate(prepared):
            if isinstance(item, _Prepared):
                tg.start_soon(start, index, item)
            else:
                rows[index] = {"item": index, "error": item}
    run_ids = [r["run_id"] for r in rows if r.get("run_id")]
    if run_ids and wait_budget(call, req.wait_seconds) > 0:
        runs = await follow(call, run_ids, wait_budget(call, req.wait_seconds))
        by_id = dict(zip(run_ids, runs))
        blocks = []
        for row in rows:
            if row.get("run_id"):
                described, found = await describe_run(call, by_id[row["run_id"]], row["run_id"])
                row.update(described)
                blocks.extend(found)
        result = _batch_result(rows, blocks)
    else:
        result = _batch_result(rows, [])
    result.structured["started"] = len(run_ids)
    return result


TOOLS = [
    ToolSpec("start_generation",
             "Paid. Starts a generation in a project (project_id, or FLORA_PROJECT_ID); without model FLORA picks "
             "one (the answer names it). Waits (wait_seconds, default 25), returns outputs or a run_id for get_run.",
             StartGeneration, start_generation, "core", read_only=False, idempotent=False),
    ToolSpec("get_run", "Status, cost and outputs of runs; waits for them.",
             GetRun, get_run, "core", read_only=True, idempotent=True),
    ToolSpec("start_generations", "Start 1-20 generations at once; one row per item.",
             StartGenerations, start_generations, "batch", read_only=False, idempotent=False),
]
