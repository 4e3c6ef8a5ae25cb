"""The project canvas, where the team sees and builds on the agent's work.

FLORA shows a project as a graph of nodes (prompts, models, images, actions), read and patched as a
Mermaid flowchart. A patch is checked here before it is sent: it must parse, and every node it only
references must already be on the canvas.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import anyio
from pydantic import BeforeValidator, Field, WithJsonSchema

from ..._ids import ASSET_ID_PATTERN
from ...errors import BadRequestError, FloraError
from ...mermaid import MAX_NODES, Flowchart, MermaidError, parse, serialize
from ..arguments import (
    ActionParamsParam,
    IdempotencyKeyParam,
    MaxUsdParam,
    NewRunParam,
    ProjectParam,
    RunIdParam,
    ToolArgs,
    WaitParam,
)
from ..canvas_links import note_canvas_url, note_node_params, noted_node_params
from ..estimates import fixed
from ..guidance import action_answer, find_model, resolve_project, resolve_workspace
from ..paid import answer, paid_start, recording_the_post, reserve
from ..param_checks import check_action
from ..toolcall import ToolCall
from ..tooling import ToolInputError, ToolResult, ToolSpec

if TYPE_CHECKING:
    from ...models import Action, Canvas

NODE_PARAM_FIELDS = ("prompt", "model", "content_url", "aspect_ratio", "resolution", "model_parameters")
NOTHING_SENT = ". Nothing was sent"


def _params_by_node(value: Any) -> Any:
    """[{node_id, prompt, …}] (published: strict function-calling takes no free-form keys) or
    {node_id: {prompt, …}} -> {node_id: {prompt, …}}; unset fields are left out."""
    if not isinstance(value, list):
        return value
    by_node: dict[str, Any] = {}
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("node_id"), str):
            raise ValueError(f"item {index} must be an object with node_id, got {item!r}")
        fields = {k: v for k, v in item.items() if k != "node_id" and v is not None}
        if isinstance(fields.get("model_parameters"), str):  # published as JSON text
            try:
                fields["model_parameters"] = json.loads(fields["model_parameters"])
            except ValueError:
                raise ValueError(f"item {index}: model_parameters must be a JSON object") from None
        by_node[item["node_id"]] = fields
    return by_node


_TEXT_OR_NULL = {"anyOf": [{"type": "string"}, {"type": "null"}]}  # not "type": [..., "null"]: see tooling._compact
NODE_PARAMS_SCHEMA = {"description": "Per node of the diagram", "anyOf": [{"type": "array", "items": {
    "type": "object", "required": ["node_id"], "properties": {
        "node_id": {"type": "string"},
        **{name: _TEXT_OR_NULL for name in NODE_PARAM_FIELDS if name != "model_parameters"},
        "model_parameters": {**_TEXT_OR_NULL, "description": "JSON object"}}}}, {"type": "null"}]}
NodeIdParam = Annotated[str, Field(pattern=r"^\S+$", description="From read_canvas or create_canvas_action")]


class GetProject(ToolArgs):
    project_id: ProjectParam = None


class ReadCanvas(ToolArgs):
    project_id: ProjectParam = None
    offset: Annotated[int | None, Field(ge=0, le=MAX_NODES, description="From next_offset of the previous page")] = None


class PatchCanvas(ToolArgs):
    diagram: Annotated[str, Field(min_length=1, description='Mermaid to add: graph LR, id["Label (kind)"], '
                                  "a --> b; existing nodes by ID")]
    node_params: Annotated[dict[str, dict[str, Any]] | None, BeforeValidator(_params_by_node),
                           WithJsonSchema(NODE_PARAMS_SCHEMA)] = None
    project_id: ProjectParam = None


class PlaceOnCanvas(ToolArgs):
    run_id: Annotated[RunIdParam | None, Field(description="A finished run: its outputs")] = None
    output_ids: Annotated[list[str] | None, Field(description="Only these outputs of run_id")] = None
    asset_id: Annotated[str | None, Field(pattern=ASSET_ID_PATTERN, description="From upload_asset")] = None
    url: Annotated[str | None, Field(description="https file FLORA can fetch")] = None
    project_id: ProjectParam = None


class CreateCanvasAction(ToolArgs):
    action_id: Annotated[str, Field(description="From list_actions, e.g. rotate-image")]
    params: ActionParamsParam = None
    project_id: ProjectParam = None


class RunCanvasAction(ToolArgs):
    node_id: NodeIdParam
    project_id: ProjectParam = None
    idempotency_key: IdempotencyKeyParam = None
    new_run: NewRunParam = None
    max_usd: MaxUsdParam = None
    wait_seconds: WaitParam = None


# --- shared steps ------------------------------------------------------------------------------------
async def _project_id(call: ToolCall, value: str | None) -> str:
    """The given project, the configured default, or an answer listing recent projects."""
    if value:
        return value
    if call.settings.project_id:
        return call.settings.project_id
    return await resolve_project(call, await resolve_workspace(call, None), None)


async def _canvas(call: ToolCall, project_id: str) -> Canvas:
    canvas = await call.client.get_canvas(project_id)
    note_canvas_url(call, project_id, canvas.canvas_url)
    return canvas


_PARSE_INLINE = 20_000  # characters: a diagram longer than this is parsed on a worker thread


async def parsed(diagram: str) -> Flowchart:
    """parse(), off the event loop when the diagram is long, so one user's big canvas cannot stall others."""
    if len(diagram) <= _PARSE_INLINE:
        return parse(diagram)
    return await anyio.to_thread.run_sync(parse, diagram)


async def _chart(canvas: Canvas) -> Flowchart | None:
    """The current canvas as a graph; None if FLORA drew something this parser does not read (or too big)."""
    try:
        return await parsed(canvas.diagram)
    except MermaidError:
        return None


def _node_listing(chart: Flowchart, limit: int = 12) -> str:
    shown = [f"{n.id} ({n.label}, {n.kind})" if n.kind else f"{n.id} ({n.label})" for n in chart.nodes.values()]
    return ", ".join(shown[:limit]) + (f" and {len(shown) - limit} more" if len(shown) > limit else "") or "none yet"


# --- reading -----------------------------------------------------------------------------------------
async def get_project(req: GetProject, call: ToolCall) -> ToolResult:
    project_id = await _project_id(call, req.project_id)
    project = await call.client.get_project(project_id)
    canvas = await _canvas(call, project_id)
    return ToolResult({"project_id": project.project_id, "name": project.name, "workspace_id": project.workspace_id,
                       "last_modified": project.last_modified, "canvas_url": canvas.canvas_url,
                       "canvas": canvas.summary.model_dump()})


READ_PAGE_NODES = 200  # nodes per read_canvas answer
READ_WHOLE_CHARS = 30_000  # a diagram up to this long comes whole; a longer one page by page


async def read_canvas(req: ReadCanvas, call: ToolCall) -> ToolResult:
    project_id = await _project_id(call, req.project_id)
    canvas = await _canvas(call, project_id)
    page = await call.client.list_canvas_nodes(project_id, limit=100)
    media = {n.node_id: n for n in page.nodes}
    chart = await _chart(canvas)
    offset = req.offset or 0
    nodes = list(chart.nodes.values()) if chart else []
    shown = nodes[offset:offset + READ_PAGE_NODES]
    noted = await noted_node_params(call, project_id)  # FLORA's reads do not say what a node was set to
    rows: list[dict[str, Any]] = []
    for node in shown:
        row: dict[str, Any] = {"id": node.id, "kind": node.kind, "label": node.label}
        found = media.pop(node.id, None)
        if found is not None:
            row |= _media_fields(found)
        if isinstance(noted.get(node.id), dict):
            row["set_by_patch"] = noted[node.id]
        rows.append(row)
    if offset == 0:
        for node in nodes[READ_PAGE_NODES:]:
            media.pop(node.id, None)
        for found in media.values():  # listed by FLORA but not drawn in the diagram under the same ID
            rows.append({"id": found.node_id, "kind": found.type, "label": found.label} | _media_fields(found))
    diagram, notes = canvas.diagram, []
    if chart is not None and (len(canvas.diagram) > READ_WHOLE_CHARS or len(nodes) > READ_PAGE_NODES):
        diagram = _page_diagram(chart, {n.id for n in shown})
        if offset + READ_PAGE_NODES < len(nodes):
            notes.append(f"nodes {offset + 1}-{offset + len(shown)} of {len(nodes)} with their edges; "
                         f"read_canvas(offset={offset + READ_PAGE_NODES}) gives the next page")
    elif chart is None and len(canvas.diagram) > READ_WHOLE_CHARS:
        diagram = canvas.diagram[:READ_WHOLE_CHARS]
        notes.append(f"the diagram is {len(canvas.diagram):,} characters; the first {READ_WHOLE_CHARS:,} are shown")
    result: dict[str, Any] = {"project_id": project_id, "canvas_url": canvas.canvas_url,
                              "summary": canvas.summary.model_dump(), "diagram": diagram, "nodes": rows}
    if chart is not None and offset + READ_PAGE_NODES < len(nodes):
        result["next_offset"] = offset + READ_PAGE_NODES
    if page.meta.next_cursor:
        notes.append("the canvas has more than 100 media nodes; their details beyond those are not listed")
    if chart is None:
        notes.append("the diagram uses Mermaid this server does not read (or is too big to read); nodes come "
                     "from FLORA's node list")
    if notes:
        result["note"] = "; ".join(notes)
    rest = {k: v for k, v in result.items() if k != "diagram"}
    return ToolResult(result, text=diagram + "\n" + json.dumps(rest, separators=(",", ":")))


def _page_diagram(chart: Flowchart, ids: set[str]) -> str:
    """The part of the diagram about these nodes: them, and the edges leaving them."""
    from ...mermaid import Group

    part = Flowchart(chart.direction, {i: n for i, n in chart.nodes.items() if i in ids},
                     [e for e in chart.edges if e.source in ids],
                     [Group(g.id, g.title, [m for m in g.members if m in ids]) for g in chart.groups
                      if any(m in ids for m in g.members)])
    return serialize(part)


def _media_fields(node: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if node.type == "text" and node.url:
        fields["text"] = node.url if len(node.url) <= 300 else node.url[:300] + "…"
    elif node.url:
        fields["url"] = node.url
    if node.asset_id:
        fields["asset_id"] = node.asset_id
    if node.width and node.height:
        fields["size"] = f"{node.width}x{node.height}"
    return fields


# --- patching ----------------------------------------------------------------------------------------
# The canvas is FLORA's page the whole team opens: a patch carries nodes, edges, labels as plain text
# and http(s) URLs, nothing that styles, scripts or links that page.
_STYLING = re.compile(r"^(click|style|classDef|class|linkStyle)\b")
_ENTITY = re.compile(r"#(?!quot;|124;)[A-Za-z0-9]+;")
_SCRIPT_SCHEME = re.compile(r"^[\s\x00-\x1f]*(javascript|data|vbscript|file)\s*:", re.IGNORECASE)


def unsafe_parts(diagram: str, patch: Flowchart) -> list[str]:
    """Directives, styling, clicks and HTML in a diagram, each with its fix."""
    problems = []
    for number, raw in enumerate(diagram.splitlines(), start=1):
        line = raw.strip()
        if "%%{" in line:
            problems.append(f"diagram: line {number}: %%{{…}}%% directives are not sent to the canvas; remove the "
                            "line (FLORA draws the canvas its own way)")
        elif match := _STYLING.match(line):
            problems.append(f"diagram: line {number}: {match.group(1)} lines are not sent to the canvas (it is "
                            "FLORA's page the whole team opens); remove the line: a patch adds nodes and edges")
    labels = [(f"node {n.id}", n.label) for n in patch.nodes.values()]
    labels += [(f"edge {e.source} --> {e.target}", e.label) for e in patch.edges]
    labels += [(f"subgraph {g.id}", g.title) for g in patch.groups]
    for where, label in labels:
        if label and ("<" in label or ">" in label):
            problems.append(f"diagram: {where}: labels are plain text; remove the HTML (<…>) from {label[:60]!r}")
        elif label and _ENTITY.search(label):
            problems.append(f"diagram: {where}: write the character itself instead of the code "
                            f"{_ENTITY.search(label).group(0)!r} (labels are plain text)")
    return problems


def unsafe_values(node_params: dict[str, dict[str, Any]]) -> list[str]:
    """javascript:, data:, vbscript: or file: values anywhere in node_params."""
    problems = []

    def walk(value: Any, where: str) -> None:
        if isinstance(value, str):
            if _SCRIPT_SCHEME.match(value):
                problems.append(f"{where}: {value.split(':', 1)[0].strip()[:20]}: values are not sent to the canvas; "
                                "use an http(s) URL (a run output or upload_asset)")
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{where}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{where}[{index}]")

    for node_id, values in node_params.items():  # content_url has its own, stricter check
        walk({k: v for k, v in values.items() if k != "content_url"}, f"node_params.{node_id}")
    return problems


def _is_web_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


async def check_patch(call: ToolCall, diagram: str, node_params: dict[str, dict[str, Any]],
                      current: Flowchart | None, project_id: str) -> list[str]:
    """Everything wrong with a patch that can be known before sending it, each with its fix."""
    try:
        patch = await parsed(diagram)
    except MermaidError as exc:
        return [f"diagram: {exc}. Write e.g. graph LR, then p1[\"Mug prompt (text)\"], then p1 --> n2"]
    problems = unsafe_parts(diagram, patch) + unsafe_values(node_params)
    for node in patch.nodes.values():
        on_canvas = current is not None and node.id in current.nodes
        if node.label is None and current is not None and not on_canvas:
            problems.append(f"diagram: line {node.line}: node {node.id} is not on the canvas of {project_id}; "
                            f'declare it as {node.id}["Label (kind)"] or use an existing ID: {_node_listing(current)}')
        elif node.label is not None and node.kind is None and not on_canvas:
            problems.append(f"diagram: line {node.line}: new node {node.id} needs its kind at the end of its label, "
                            f'e.g. {node.id}["{node.label} (image)"] (text, image, video or audio)')
    for node_id, values in node_params.items():
        if node_id not in patch.nodes:
            problems.append(f"node_params.{node_id}: not a node of the diagram (its nodes: {', '.join(patch.nodes)})")
            continue
        for key in values:
            if key not in NODE_PARAM_FIELDS:
                problems.append(f"node_params.{node_id}.{key}: not a node param; use {', '.join(NODE_PARAM_FIELDS)}")
        model = values.get("model")
        if isinstance(model, str):
            try:
                await find_model(call, model)
            except ToolInputError as exc:
                problems.append(f"node_params.{node_id}.{exc}")
        elif model is not None:
            problems.append(f"node_params.{node_id}.model: an endpoint ID string from list_models")
        url = values.get("content_url")
        if url is not None and not (isinstance(url, str) and _is_web_url(url)):
            problems.append(f"node_params.{node_id}.content_url: an http(s) URL (a run output or upload_asset)")
    return problems


async def patch_canvas(req: PatchCanvas, call: ToolCall) -> ToolResult:
    from ...models import CanvasPatch

    project_id = await _project_id(call, req.project_id)
    canvas = await _canvas(call, project_id)
    problems = await check_patch(call, req.diagram, req.node_params or {}, await _chart(canvas), project_id)
    if problems:
        raise ToolInputError("; ".join(problems) + NOTHING_SENT)
    try:
        patched = await call.client.patch_canvas(project_id, CanvasPatch(diagram=req.diagram,
                                                                         node_params=req.node_params))
    except FloraError as exc:
        if not exc.may_have_started:
            raise
        raise FloraError(
            f"FLORA did not confirm the patch of {project_id} ({exc.message}); it may have been applied",
            code="outcome_unknown",
            hint=f"call read_canvas(project_id={project_id!r}) and look for the new nodes "
                 f"({', '.join(list((await parsed(req.diagram)).declared())[:8]) or 'of this patch'}) before sending "
                 "it again: a second patch would add them twice") from None
    if req.node_params:
        await note_node_params(call, project_id, req.node_params)
    result: dict[str, Any] = {"project_id": project_id, "canvas_url": patched.canvas_url, "applied": patched.diagram,
                              "created_nodes": patched.created_node_count, "created_edges": patched.created_edge_count}
    if patched.warnings:
        result["warnings"] = patched.warnings
    return ToolResult(result)


# --- placing files -----------------------------------------------------------------------------------
async def place_on_canvas(req: PlaceOnCanvas, call: ToolCall) -> ToolResult:
    if sum(x is not None for x in (req.run_id, req.asset_id, req.url)) != 1:
        raise ToolInputError("pass exactly one of run_id (a finished run's outputs), asset_id (from upload_asset) "
                             "or url (an https file FLORA can fetch)" + NOTHING_SENT)
    if req.output_ids and not req.run_id:
        raise ToolInputError("output_ids: only with run_id" + NOTHING_SENT)
    project_id = await _project_id(call, req.project_id)
    project = await call.client.get_project(project_id)
    sources = await _sources(call, req) if req.asset_id is None else []
    from ...models import AssetFromSource

    placed = []
    for name, url, output_id in sources:
        try:
            asset = await call.client.create_asset_from_source(
                AssetFromSource(source=url, workspace_id=project.workspace_id, file_name=name))
        except BadRequestError as exc:  # FLORA names its own field (source); the agent sent url or run_id
            field = "url" if req.url else "run_id"
            raise ToolInputError(f"{field}: FLORA could not copy {url[:200]!r} into an asset ({exc.message})"
                                 + NOTHING_SENT) from None
        placed.append(({"output_id": output_id} if output_id else {}, asset.asset_id))
    if req.asset_id:
        placed.append(({}, req.asset_id))
    rows, canvas_url = [], None
    for extra, asset_id in placed:
        attached = await call.client.attach_asset(project_id, asset_id)
        canvas_url = attached.canvas_url
        rows.append({"node_id": attached.node_id, "asset_id": asset_id} | extra)
    if canvas_url:
        note_canvas_url(call, project_id, canvas_url)
    return ToolResult({"project_id": project_id, "canvas_url": canvas_url, "placed": rows,
                       "next": "read_canvas shows them; wire them to other nodes with patch_canvas"})


async def _sources(call: ToolCall, req: PlaceOnCanvas) -> list[tuple[str, str, str | None]]:
    """(file name, URL, output ID) of each file to copy into an asset before attaching it."""
    if req.url is not None:
        if not req.url.startswith(("https://", "http://")):
            raise ToolInputError("url: an https URL FLORA can fetch (e.g. a run output)" + NOTHING_SENT)
        return [(req.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "file", req.url, None)]
    run = await call.client.get_run(req.run_id)  # type: ignore[arg-type]
    if run.status != "completed":
        raise ToolInputError(f"run_id: {run.run_id} is {run.status}, not completed; "
                             + ("call get_run until it finishes, then place it" if not run.finished
                                else "a failed run has no outputs") + NOTHING_SENT)
    outputs = run.outputs
    if req.output_ids:
        known = {o.output_id for o in outputs}
        unknown = [o for o in req.output_ids if o not in known]
        if unknown:
            raise ToolInputError(f"output_ids: {', '.join(unknown)} not in {run.run_id}; its outputs: "
                                 f"{', '.join(known)}" + NOTHING_SENT)
        outputs = [o for o in outputs if o.output_id in req.output_ids]
    sources = []
    for output in outputs:
        if not output.url.startswith(("http://", "https://")):
            continue  # an inline text output: put it on the canvas as a text node with patch_canvas
        extension = output.url.split("?", 1)[0].rsplit(".", 1)[-1] if "." in output.url.rsplit("/", 1)[-1] else "bin"
        sources.append((f"{run.run_id}-{output.output_id}.{extension}", output.url, output.output_id))
    if not sources:
        raise ToolInputError(f"run_id: {run.run_id} has no file outputs to place; add text with patch_canvas "
                             '(a node like t1["Caption (text)"] with node_params {"t1": {"prompt": "…"}})' + NOTHING_SENT)
    return sources


# --- canvas actions ----------------------------------------------------------------------------------
async def _actions(call: ToolCall) -> dict[str, Action]:
    return {a.action_id: a for a in (await call.client.list_actions()).actions}


async def create_canvas_action(req: CreateCanvasAction, call: ToolCall) -> ToolResult:
    from ...models import CanvasActionRequest

    actions = await _actions(call)
    action = actions.get(req.action_id)
    if action is None:
        raise ToolInputError(f"action_id: {action_answer(req.action_id, actions)}" + NOTHING_SENT)
    # Inputs come from the nodes wired into it on the canvas, so only its params are checked here.
    problems = [p for p in check_action(action, [], req.params) if p.startswith("params.")]
    if problems:
        raise ToolInputError("; ".join(problems) + NOTHING_SENT)
    project_id = await _project_id(call, req.project_id)
    created = await call.client.create_canvas_action(project_id, CanvasActionRequest(action_id=action.action_id,
                                                                                     params=req.params or None))
    note_canvas_url(call, project_id, created.canvas_url)
    needs = " and ".join(f"{_a(s.type)} ({s.name})" for s in action.inputs if s.required) or "no inputs"
    return ToolResult({"project_id": project_id, "node_id": created.node_id, "action_id": created.action_id,
                       "canvas_url": created.canvas_url, "needs": needs,
                       "next": f"wire inputs with patch_canvas (e.g. graph LR then <node> --> {created.node_id}), "
                               f"then run_canvas_action(node_id={created.node_id!r})"})


def _a(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


def _action_for(label: str | None, actions: dict[str, Action]) -> Action | None:
    """The action an action node runs, from its label (the action's name)."""
    matches = [a for a in actions.values() if label and label.strip().lower() in (a.name.lower(), a.action_id)]
    return matches[0] if len(matches) == 1 else None


async def run_canvas_action(req: RunCanvasAction, call: ToolCall) -> ToolResult:
    project_id = await _project_id(call, req.project_id)
    canvas = await _canvas(call, project_id)
    chart = await _chart(canvas)
    action = None
    if chart is not None:  # check what can be checked before any money is spent
        node = chart.nodes.get(req.node_id)
        action_nodes = [n for n in chart.nodes.values() if (n.kind or "").lower() == "action"]
        if node is None:
            there = ", ".join(f"{n.id} ({n.label})" for n in action_nodes) or "none; create one with create_canvas_action"
            raise ToolInputError(f"node_id {req.node_id!r} is not on the canvas of {project_id}; action nodes: "
                                 f"{there}")
        if (node.kind or "").lower() != "action":
            raise ToolInputError(f"node_id {req.node_id} is {_a(node.kind or 'plain')} node, not an action; action "
                                 f"nodes: {', '.join(n.id for n in action_nodes) or 'none'}")
        action = _action_for(node.label, await _actions(call))
        wired = [e.source for e in chart.edges if e.target == node.id]
        if action is not None and any(s.required for s in action.inputs) and not wired:
            needs = " and ".join(_a(s.type) for s in action.inputs if s.required)
            raise ToolInputError(f"node_id {node.id} ({node.label}) has no inputs: it needs {needs}. Wire one with "
                                 f"patch_canvas(diagram='graph LR\\n  <node ID> --> {node.id}')")
    start = paid_start(call, "run_canvas_action", {"project_id": project_id, "node_id": req.node_id},
                       fixed(action.charged_cost if action else None, "the action's"),
                       idempotency_key=req.idempotency_key, new_run=bool(req.new_run), kind="action",
                       model=action.action_id if action else None, project_id=project_id, label=req.node_id)
    await reserve(call, [start], f"Canvas action {req.node_id}", req.max_usd)
    if start.must_post:
        async with recording_the_post(call, start) as post:
            post.started(await call.client.run_canvas_action(project_id, req.node_id, idempotency_key=start.key,
                                                             resend=start.resend))
    result = await answer(call, start, req.wait_seconds)
    result.structured.setdefault("canvas_url", canvas.canvas_url)
    if action is not None:
        result.structured.setdefault("action_id", action.action_id)
    return result


TOOLS = [
    ToolSpec("get_project", "A project with its canvas URL and canvas size.",
             GetProject, get_project, "canvas", read_only=True, idempotent=True),
    ToolSpec("read_canvas", "A project's canvas as Mermaid, plus its nodes (IDs, kinds, labels, URLs).",
             ReadCanvas, read_canvas, "canvas", read_only=True, idempotent=True),
    ToolSpec("patch_canvas", "Add and connect canvas nodes with a Mermaid diff; checked before sending.",
             PatchCanvas, patch_canvas, "canvas", read_only=False, idempotent=False),
    ToolSpec("place_on_canvas", "Put a run's outputs, an uploaded asset or a URL on a project canvas.",
             PlaceOnCanvas, place_on_canvas, "canvas", read_only=False, idempotent=False),
    ToolSpec("create_canvas_action", "Add a prebuilt action node (rotate-image, …) to a canvas.",
             CreateCanvasAction, create_canvas_action, "canvas", read_only=False, idempotent=False),
    ToolSpec("run_canvas_action", "Paid. Run a canvas action node on its wired inputs; waits, returns outputs.",
             RunCanvasAction, run_canvas_action, "canvas", read_only=False, idempotent=False),
]
