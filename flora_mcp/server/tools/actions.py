"""Prebuilt actions (rotate-image, add-text-to-image, split-text, …) and saved techniques (tech_…)."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema

from ..._ids import TECHNIQUE_ID_PATTERN
from ..arguments import (
    ActionParamsParam,
    IdempotencyKeyParam,
    InputItem,
    MaxUsdParam,
    NewRunParam,
    PreviewsParam,
    ProjectRefParam,
    ToolArgs,
    WaitParam,
    WorkspaceParam,
    named_values,
    parse_named_values,
)
from ..chaining import resolve_output_uris
from ..estimates import fixed
from ..guidance import action_answer, project_by_name, recent_project, resolve_workspace
from ..paid import answer, paid_start, recording_the_post, reserve
from ..param_checks import check_action, describe_action_param
from ..toolcall import ToolCall
from ..tooling import ToolInputError, ToolResult, ToolSpec

if TYPE_CHECKING:
    from ...models import Action, Technique


class ListActions(ToolArgs):
    query: str | None = None  # matches ID, name, description


INPUT_TYPES = ("image", "video", "audio", "text")
OUTPUT_TYPES = ("imageUrl", "videoUrl", "audioUrl")  # an output row's types, read as image, video, audio


class RunAction(ToolArgs):
    action_id: Annotated[str, Field(description="From list_actions, e.g. rotate-image")]
    inputs: Annotated[
        list[InputItem],
        Field(min_length=1),
        WithJsonSchema({"type": "array", "minItems": 1, "description": "{type, url} or {type: text, text}; urls "
                        "from upload_asset, or pass a run's output object as is", "items": {
                            "type": "object", "required": ["type"], "properties": {
                                # an output object's own types too, as it is accepted as is
                                "type": {"enum": [*INPUT_TYPES, *OUTPUT_TYPES], "type": "string"},
                                "url": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                                "text": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}}),
    ]
    params: ActionParamsParam = None
    workspace_id: WorkspaceParam = None
    project_id: ProjectRefParam = None
    idempotency_key: IdempotencyKeyParam = None
    new_run: NewRunParam = None
    wait_seconds: WaitParam = None
    max_usd: MaxUsdParam = None
    previews: PreviewsParam = None


class ListTechniques(ToolArgs):
    workspace_id: WorkspaceParam = None


class RunTechnique(ToolArgs):
    technique_id: Annotated[str, Field(pattern=TECHNIQUE_ID_PATTERN, description="From list_techniques")]
    inputs: Annotated[dict[str, Any], BeforeValidator(parse_named_values), WithJsonSchema(named_values(
        "As list_techniques shows, e.g. [{name: product, value: <image URL>}]; an output object works as a value"))]
    workspace_id: WorkspaceParam = None
    idempotency_key: IdempotencyKeyParam = None
    new_run: NewRunParam = None
    wait_seconds: WaitParam = None
    max_usd: MaxUsdParam = None
    previews: PreviewsParam = None


# --- actions -------------------------------------------------------------------------------------
def compact_action(a: Action) -> dict[str, Any]:
    return {"id": a.action_id, "name": a.name, "does": a.description, "in": " ".join(s.type for s in a.inputs),
            "out": " ".join(s.type for s in a.outputs), "params": " ".join(describe_action_param(p) for p in a.params),
            "usd": a.charged_cost}


async def _actions(call: ToolCall) -> dict[str, Action]:
    return {a.action_id: a for a in (await call.client.list_actions()).actions}


async def list_actions(req: ListActions, call: ToolCall) -> ToolResult:
    actions = list((await _actions(call)).values())
    if req.query:
        q = req.query.lower()
        actions = [a for a in actions if q in f"{a.action_id} {a.name} {a.description or ''}".lower()]
    return ToolResult({"actions": [compact_action(a) for a in actions],
                       "note": "pass id as action_id; params: key(values|min-max), * = required; usd: price per run"})


async def run_action(req: RunAction, call: ToolCall) -> ToolResult:
    actions = await _actions(call)
    action = actions.get(req.action_id)
    if action is None:
        raise ToolInputError(f"action_id: {action_answer(req.action_id, actions)}")
    for item, url in zip(req.inputs, await resolve_output_uris(call.client, [i.url for i in req.inputs])):
        item.url = url
    problems = check_action(action, req.inputs, req.params)
    if problems:
        raise ToolInputError("; ".join(problems))
    workspace_id, named = req.workspace_id, None
    if req.project_id and not req.project_id.startswith("prj_"):  # a project's name
        named = req.project_id
        workspace_id, req.project_id = await project_by_name(call, named, workspace_id)
    workspace_id = await resolve_workspace(call, workspace_id, req.project_id)
    project_id = req.project_id or call.settings.project_id or await recent_project(call, workspace_id)
    from ...models import ActionInput, ActionRunRequest

    body = ActionRunRequest(action_id=action.action_id, workspace_id=workspace_id, project_id=project_id,
                            inputs=[ActionInput(**i.model_dump(exclude_none=True)) for i in req.inputs],
                            params=req.params or None)
    start = paid_start(call, "run_action", body.model_dump(exclude_none=True), fixed(action.charged_cost, "the action's"),
                       idempotency_key=req.idempotency_key, new_run=bool(req.new_run), kind="action",
                       model=action.action_id, project_id=project_id, label=action.action_id)
    await reserve(call, [start], f"Action {action.action_id}", req.max_usd)
    if start.must_post:
        async with recording_the_post(call, start) as post:
            post.started(await call.client.start_action_run(body, idempotency_key=start.key, resend=start.resend))
    result = await answer(call, start, req.wait_seconds)
    if not req.project_id or named:
        result.structured["project_id"] = project_id  # chosen for the agent, or named by it: say which
    if named:
        result.structured["project_note"] = f"{named!r} is {project_id}; pass the ID next time"
    return result


# --- techniques ----------------------------------------------------------------------------------
def compact_technique(t: Technique) -> dict[str, Any]:
    return {"id": t.technique_id, "name": t.name, "description": t.description,
            "inputs": " ".join(f"{s.name}{'*' if s.required else ''}({s.type})" for s in t.inputs),
            "usd": t.run_cost, "run_seconds": t.estimated_seconds}


async def list_techniques(req: ListTechniques, call: ToolCall) -> ToolResult:
    workspace_id = await resolve_workspace(call, req.workspace_id)
    techniques = (await call.client.list_techniques(workspace_id)).techniques
    return ToolResult({"workspace_id": workspace_id, "techniques": [compact_technique(t) for t in techniques],
                       "note": "inputs: name(type), * = required; pass image inputs as URLs or output objects. "
                               "usd: price per run (null: FLORA gives none); run_seconds: typical time to finish"})


async def run_technique(req: RunTechnique, call: ToolCall) -> ToolResult:
    workspace_id = await resolve_workspace(call, req.workspace_id)
    techniques = {t.technique_id: t for t in (await call.client.list_techniques(workspace_id)).techniques}
    technique = techniques.get(req.technique_id)
    if technique is None:
        raise ToolInputError(f"technique_id {req.technique_id} is not in {workspace_id}; available: "
                             + ", ".join(f"{t.technique_id} ({t.name})" for t in techniques.values()))
    req.inputs = dict(zip(req.inputs, await resolve_output_uris(call.client, list(req.inputs.values()))))
    slots = {s.name: s for s in technique.inputs}
    problems = []
    for name, value in req.inputs.items():
        if name not in slots:
            close = difflib.get_close_matches(name, slots, n=1, cutoff=0.6)
            problems.append(f"inputs.{name}: not an input of {technique.technique_id}."
                            + (f" Did you mean {close[0]!r}?" if close else "") + f" Inputs: {', '.join(slots)}")
        elif slots[name].type != "text" and not (isinstance(value, str) and value.startswith(("http://", "https://"))):
            problems.append(f"inputs.{name}: a {slots[name].type} input takes an http(s) URL (a run output or upload_asset)")
    problems += [f"inputs.{s.name}: required ({s.type})" for s in technique.inputs if s.required and s.name not in req.inputs]
    if problems:
        raise ToolInputError("; ".join(problems))
    from ...models import TechniqueRunRequest

    body = TechniqueRunRequest(technique_id=technique.technique_id, workspace_id=workspace_id, inputs=req.inputs)
    start = paid_start(call, "run_technique", body.model_dump(exclude_none=True),
                       fixed(technique.run_cost, "the technique's"),
                       idempotency_key=req.idempotency_key, new_run=bool(req.new_run), kind="technique",
                       model=technique.technique_id, label=technique.name[:40])
    await reserve(call, [start], f"Technique {technique.technique_id}", req.max_usd)
    if start.must_post:
        async with recording_the_post(call, start) as post:
            post.started(await call.client.start_technique_run(body, idempotency_key=start.key,
                                                               resend=start.resend))
    return await answer(call, start, req.wait_seconds)


ACTION_TOOLS = [
    ToolSpec("list_actions", "Prebuilt edits (rotate, text, blur…): IDs, inputs, params.",
             ListActions, list_actions, "actions", read_only=True, idempotent=True),
    ToolSpec("run_action", "Paid. Run an action on images/text (inputs: upload_asset URLs or run outputs); waits, "
             "returns outputs. Without project_id: the most recent project.",
             RunAction, run_action, "actions", read_only=False, idempotent=False),
]
TECHNIQUE_TOOLS = [
    ToolSpec("list_techniques", "Saved FLORA workflows (tech_…) and their inputs.",
             ListTechniques, list_techniques, "techniques", read_only=True, idempotent=True),
    ToolSpec("run_technique", "Paid. Run a saved workflow; waits, returns outputs.",
             RunTechnique, run_technique, "techniques", read_only=False, idempotent=False),
]
