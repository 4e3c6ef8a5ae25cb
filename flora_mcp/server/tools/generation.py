"""Starting generations and following runs to their outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import anyio
from pydantic import Field, ValidationError, WithJsonSchema

from ..._ids import GENERATION_TYPES, RUN_ID_PATTERN
from ...errors import FloraError
from ..arguments import (
    PARAMS_SCHEMA,
    IdempotencyKeyParam,
    MaxUsdParam,
    ModelIdParam,
    NewRunParam,
    ParamsParam,
    PreviewsParam,
    ProjectRefParam,
    PromptParam,
    RunIdParam,
    ToolArgs,
    TypeParam,
    WaitParam,
    WorkspaceParam,
)
from ..callbacks import callback_url
from ..estimates import Estimate, credits_of, estimate
from ..guidance import explain, find_model, project_by_name, resolve_project, resolve_workspace
from ..paid import PaidStart, answer, paid_start, pending_row, recording_the_post, reserve, start_facts
from ..param_checks import check_params
from ..runs import describe_run, is_transient, unknown_status_row, wait_budget
from ..spending import check_max_usd
from ..toolcall import ToolCall
from ..tooling import NOTHING_STARTED, ToolInputError, ToolResult, ToolSpec
from ..waiting import follow

if TYPE_CHECKING:
    from ...models import GenerateRequest, Model

MAX_BATCH = 20


class GenerationItem(ToolArgs):
    type: TypeParam
    prompt: PromptParam
    model: ModelIdParam = None
    params: ParamsParam = None
    workspace_id: WorkspaceParam = None
    project_id: ProjectRefParam = None


class StartGeneration(GenerationItem):
    idempotency_key: IdempotencyKeyParam = None
    new_run: NewRunParam = None
    wait_seconds: WaitParam = None
    dry_run: Annotated[bool | None, Field(description="Check and estimate only")] = None
    max_usd: MaxUsdParam = None
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
                           "model": {"anyOf": [{"type": "string"}, {"type": "null"}]}, "params": PARAMS_SCHEMA}}}),
    ]
    workspace_id: WorkspaceParam = None
    project_id: ProjectRefParam = None
    new_run: NewRunParam = None
    wait_seconds: WaitParam = None
    dry_run: Annotated[bool | None, Field(description="Check and estimate the total only")] = None
    max_usd: Annotated[float | None, Field(gt=0, description="Refuse if the total may cost more (USD)")] = None
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
    def __init__(self, request: GenerateRequest, model: Model | None, estimate: Estimate,
                 project_named: str | None = None) -> None:
        self.request = request
        self.model = model
        self.estimate = estimate
        self.project_named = project_named  # the name the agent gave for the project, when it gave one

    def start(self, call: ToolCall, tool: str, *, idempotency_key: str | None, new_run: bool | None,
              item: int | None = None) -> PaidStart:
        # callback_url is this server's plumbing (set or not per replica), not the agent's request
        body = self.request.model_dump(exclude_none=True, exclude={"callback_url"})
        if item is not None:  # a repeated batch maps item i to item i, even when items are alike
            body["batch_item"] = item
        return paid_start(call, tool, body, self.estimate, idempotency_key=idempotency_key, new_run=bool(new_run),
                          kind="generation", model=self.request.model, project_id=self.request.project_id,
                          label=self.request.prompt[:40])


async def _prepare(call: ToolCall, item: GenerationItem, workspace_id: str | None, project_id: str | None) -> _Prepared:
    workspace_id, project_id = item.workspace_id or workspace_id, item.project_id or project_id
    named = project_id if project_id and not project_id.startswith("prj_") else None
    if named:  # a project's name: the one project of that name in the key's workspaces
        workspace_id, project_id = await project_by_name(call, named, workspace_id)
    workspace_id = await resolve_workspace(call, workspace_id, project_id)
    project_id = await resolve_project(call, workspace_id, project_id)
    model = await find_model(call, item.model, item.type) if item.model else None
    if item.params and model is None:
        raise ToolInputError("params belong to a model: pass model=<endpoint ID from list_models> with params")
    if model is not None:
        problems = check_params(model, item.params)
        if problems:
            raise ToolInputError("; ".join(problems))
    from ...models import GenerateRequest

    request = GenerateRequest(type=item.type, prompt=item.prompt, workspace_id=workspace_id, project_id=project_id,
                              model=item.model, params=item.params or None, callback_url=callback_url(call))
    return _Prepared(request, model, await estimate(call, model, item.params), named)


# --- tools ---------------------------------------------------------------------------------------
async def start_generation(req: StartGeneration, call: ToolCall) -> ToolResult:
    prepared = await _prepare(call, req, None, None)
    if req.dry_run:
        return _dry_run(call, prepared, req.max_usd)
    start = prepared.start(call, "start_generation", idempotency_key=req.idempotency_key, new_run=req.new_run)
    await reserve(call, [start], "Generation", req.max_usd)
    if start.must_post:
        async with recording_the_post(call, start) as post:
            post.started(await call.client.start_generation(prepared.request, idempotency_key=start.key,
                                                            resend=start.resend))
    result = await answer(call, start, req.wait_seconds)
    result.structured |= _named_project(prepared)
    return result


def _named_project(prepared: _Prepared) -> dict[str, Any]:
    """A project given by name: the answer gives its ID (and workspace) for the next call."""
    if not prepared.project_named:
        return {}
    return {"project_id": prepared.request.project_id, "workspace_id": prepared.request.workspace_id,
            "project_note": f"{prepared.project_named!r} is {prepared.request.project_id}; pass the ID next time"}


def _dry_run(call: ToolCall, prepared: _Prepared, max_usd: float | None) -> ToolResult:
    model, cost = prepared.model, prepared.estimate
    return ToolResult({
        "dry_run": True, "params_ok": True, "request": prepared.request.model_dump(exclude_none=True),
        "estimated_credits": credits_of(call, cost.usd), **cost.details(),
        "estimated_seconds": model.estimated_seconds if model else None,
        **_max_usd_verdict([cost], max_usd, "Generation"), **_named_project(prepared),
        "note": "nothing was started or charged" + ("" if model else "; no model named: FLORA picks one, "
                                                    "and its cost is not known in advance"),
    })


def _max_usd_verdict(estimates: list[Estimate], max_usd: float | None, what: str) -> dict[str, Any]:
    """A dry run says whether the real call would pass max_usd, and if not the refusal it would get."""
    if max_usd is None or not estimates:
        return {}
    try:
        check_max_usd(estimates, max_usd, what)
    except ToolInputError as exc:
        return {"within_max_usd": False, "refusal": str(exc)}
    return {"within_max_usd": True}


def _batch_dry_run(prepared: list[_Prepared | str], max_usd: float | None) -> ToolResult:
    """Each item's estimate and the batch's total: what start_generations would hold and may charge."""
    good = [p for p in prepared if isinstance(p, _Prepared)]
    rows = [{"item": i, "error": p} if isinstance(p, str) else
            {"item": i, "model": p.request.model, **p.estimate.details()} for i, p in enumerate(prepared)]
    summary: dict[str, Any] = {"dry_run": True, "items": rows}
    if good and all(p.estimate.usd is not None for p in good):
        summary |= {"estimated_usd": round(sum(p.estimate.usd or 0.0 for p in good), 4),
                    "estimated_usd_max": round(sum(p.estimate.reserve_usd for p in good), 4)}
    else:
        summary["estimated_usd"] = None
    summary |= _max_usd_verdict([p.estimate for p in good], max_usd, f"Batch of {len(good)}")
    errors = len(rows) - len(good)
    summary["note"] = ("nothing was started or charged" + (f"; {errors} item(s) would be refused (see error)"
                                                          if errors else ""))
    return ToolResult(summary)


async def get_run(req: GetRun, call: ToolCall) -> ToolResult:
    run_ids = [req.run_id] if isinstance(req.run_id, str) else list(dict.fromkeys(req.run_id))
    runs = await follow(call, run_ids, wait_budget(call, req.wait_seconds))
    rows, blocks = [], []
    for run, run_id in zip(runs, run_ids):
        if isinstance(run, FloraError):
            if len(run_ids) == 1 and not is_transient(run):
                raise run  # a wrong run ID: the error says where run IDs come from
            rows.append(unknown_status_row(run_id, run) if is_transient(run)
                        else {"run_id": run_id, "error": {"code": run.code, "message": str(run)}})
            continue
        row, found = await describe_run(call, run)
        rows.append(row | await _what_was_asked(call, run_id))
        blocks.extend(found)
    if isinstance(req.run_id, str):
        return ToolResult(rows[0], content=blocks)
    return _batch_result(rows, blocks, asked=len(run_ids))


async def _what_was_asked(call: ToolCall, run_id: str) -> dict[str, Any]:
    """For a run started through this server: its model and the opening words of its prompt (ledger), so
    an agent that has only the run ID (after a crash, say) can tell which run it is."""
    try:
        known = await call.ledger.run(call.user_id, run_id)
    except Exception:  # noqa: BLE001 - naming the run is a courtesy; its status is the answer
        return {}
    if not known:
        return {}
    asked = {"model": known.get("model")} if known.get("model") else {}
    if known.get("kind") == "generation" and known.get("label"):
        asked["prompt"] = known["label"] + ("…" if len(known["label"]) >= 40 else "")
    return asked


def _batch_result(rows: list[dict[str, Any]], blocks: list, *, asked: int) -> ToolResult:
    """One row per item or run. The total is final only when every started run has settled."""
    settled = [r for r in rows if r.get("status") in ("completed", "failed")]
    unfinished = [r["run_id"] for r in rows if r.get("run_id") and r.get("status") not in ("completed", "failed")]
    open_ended = [r for r in rows if r.get("status") in ("accepted", "unknown") and not r.get("run_id")]
    refused = [r for r in rows if "error" in r]
    total = round(sum(r.get("charged_usd", 0.0) for r in settled), 4)
    summary: dict[str, Any] = {
        "runs": rows,
        "finished": len(settled),
        "of": asked,
        ("charged_usd_so_far" if unfinished or open_ended else "charged_usd"): total,
    }
    if refused:
        summary["refused"] = len(refused)
    nexts = []
    if unfinished:
        nexts.append(f"call get_run with run_id={unfinished} to follow the {len(unfinished)} unfinished runs")
    if refused:
        nexts.append(f"{len(refused)} of {asked} were not started (see each row's error); fix those items and send "
                     "only them again")
    if open_ended:
        nexts.append("rows with status accepted/unknown say what to do in their own next field")
    if nexts:
        summary["next"] = "; ".join(nexts)
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
        except (ToolInputError, FloraError) as exc:  # said once for the batch, not in every row
            prepared.append(str(exc).replace(f". {NOTHING_STARTED}", "").rstrip(". "))
    if req.dry_run:
        return _batch_dry_run(prepared, req.max_usd)
    rows: list[dict[str, Any]] = [{"item": i, "error": p} for i, p in enumerate(prepared) if isinstance(p, str)]
    good = {i: p.start(call, "start_generations", idempotency_key=None, new_run=req.new_run, item=i)
            for i, p in enumerate(prepared) if isinstance(p, _Prepared)}
    if not good:
        raise ToolInputError("items: none could be started: " + "; ".join(f"item {r['item']}: {r['error']}" for r in rows))
    await reserve(call, list(good.values()), f"Batch of {len(good)}", req.max_usd)

    async def start_one(index: int, start: PaidStart) -> None:
        item = prepared[index]
        assert isinstance(item, _Prepared)
        if not start.must_post:
            return
        try:
            async with recording_the_post(call, start) as post:
                post.started(await call.client.start_generation(item.request, idempotency_key=start.key,
                                                                resend=start.resend))
        except (FloraError, ToolInputError) as exc:  # refused before anything started: its own row
            rows.append({"item": index, "error": str(exc), "idempotency_key": start.key})

    async with anyio.create_task_group() as tg:
        for index, start in good.items():
            tg.start_soon(start_one, index, start)
    started = {i: s for i, s in good.items() if s.run_id}
    runs = {}
    if started and wait_budget(call, req.wait_seconds) > 0:
        run_ids = [s.run_id for s in started.values()]
        runs = dict(zip(run_ids, await follow(call, run_ids, wait_budget(call, req.wait_seconds))))
    blocks: list = []
    for index, start in good.items():
        if any(r["item"] == index for r in rows):
            continue
        row = pending_row(call, start) or {"run_id": start.run_id, "status": "pending"}
        run = runs.get(start.run_id) if start.run_id else None
        if isinstance(run, FloraError):
            row = unknown_status_row(start.run_id, run)
        elif run is not None:
            row, found = await describe_run(call, run)
            blocks.extend(found)
        rows.append({"item": index, **row, **start_facts(start)})
    rows.sort(key=lambda r: r["item"])
    result = _batch_result(rows, blocks, asked=len(req.items))
    result.structured["started"] = len(started)
    named = [p for p in prepared if isinstance(p, _Prepared) and p.project_named]
    if named:
        result.structured |= _named_project(named[0])
    return result


CORE_TOOLS = [
    ToolSpec("start_generation",
             "Paid. Starts a generation in a project (project_id, or FLORA_PROJECT_ID); without model FLORA picks "
             "one (the answer names it). Waits (wait_seconds; default 25, less if your client cuts calls sooner), "
             "returns outputs or a run_id for get_run.",
             StartGeneration, start_generation, "core", read_only=False, idempotent=False),
    ToolSpec("get_run", "Status, cost and outputs of runs; waits for them.",
             GetRun, get_run, "core", read_only=True, idempotent=True),
]
BATCH_TOOLS = [
    ToolSpec("start_generations", "Start 1-20 generations at once; one row per item.",
             StartGenerations, start_generations, "batch", read_only=False, idempotent=False),
]
