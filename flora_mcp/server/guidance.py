"""Answers that turn a wrong value into the right one.

A display name where an ID belongs, an ID without its prefix, a model family where a type belongs:
each becomes a ToolInputError naming the field and the value to use. Nothing here lets a value
the contract rejects reach FLORA.
"""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from .._ids import GENERATION_TYPES
from ..errors import FloraError
from .arguments import PROMPT_MAX_CHARS
from .toolcall import ToolCall
from .tooling import ToolInputError

if TYPE_CHECKING:
    from ..models import Action, Model, Project, Workspace

# Model-family prefixes agents confuse with the generation `type`.
FAMILY_TYPES = {
    "t2i": "image", "i2i": "image", "text-to-image": "image", "img": "image", "picture": "image", "photo": "image",
    "t2v": "video", "i2v": "video", "v2v": "video", "text-to-video": "video", "image-to-video": "video",
    "tts": "audio", "t2a": "audio", "t2m": "audio", "speech": "audio", "music": "audio", "sound": "audio",
    "llm": "text", "t2t": "text", "chat": "text", "language": "text",
}
_LONGEST_LOOKUP = 200  # characters: a longer wrong value is answered by its length, never looked up in FLORA
_ECHOING = ("string_pattern_mismatch", "literal_error", "enum", "string_type")  # explained by looking the value up


def explain_type(value: Any) -> str:
    text = str(value).strip().lower()
    guess = FAMILY_TYPES.get(text) or next((t for t in GENERATION_TYPES if text.startswith(t)), None)
    base = f"type must be one of image, video, audio, text (got {value!r})"
    if guess:
        return (f"{base}. {value!r} is a model family; use type={guess!r} and choose a model with "
                f"list_models(type={guess!r})")
    return base


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", s.lower())


def closest_ids(value: str, names: dict[str, str], n: int = 3) -> list[str]:
    """IDs whose ID or name matches `value` exactly (normalised), else the closest few."""
    target = _norm(value)
    exact = [i for i, name in names.items() if target in (_norm(i), _norm(name))]
    if exact:
        return exact
    contains = [i for i, name in names.items() if target and (target in _norm(name) or target in _norm(i))]
    if contains:
        return contains[:n]
    keys = {_norm(name): i for i, name in names.items()} | {_norm(i): i for i in names}
    return list(dict.fromkeys(keys[k] for k in difflib.get_close_matches(target, keys, n=n, cutoff=0.5)))


def _listing(items: dict[str, str], limit: int = 5) -> str:
    shown = [f"{i} ({name})" for i, name in list(items.items())[:limit]]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(shown) + more


async def _workspaces(call: ToolCall) -> list[Workspace]:
    return (await call.client.list_workspaces()).workspaces


async def resolve_workspace(call: ToolCall, value: str | None, project_id: str | None = None) -> str:
    """The ws_ ID to use: the given one, the configured default, the only workspace there is, or
    the workspace of the given project."""
    if value:
        return value
    if call.settings.workspace_id:
        return call.settings.workspace_id
    workspaces = await _workspaces(call)
    if len(workspaces) == 1:
        return workspaces[0].workspace_id
    if not workspaces:
        raise ToolInputError("This API key has no workspaces; create one in FLORA first")
    if project_id:
        found = await _workspace_of(call, [w.workspace_id for w in workspaces], project_id)
        if found:
            return found
    names = {w.workspace_id: w.name for w in workspaces}
    raise ToolInputError(
        f"workspace_id is required: this key has {len(workspaces)} workspaces: {_listing(names)}"
        + (f", and none holds project {project_id}" if project_id else "")
        + ". Pass one, or a project_id (its workspace is used), or set FLORA_WORKSPACE_ID"
    )


async def _workspace_of(call: ToolCall, workspace_ids: list[str], project_id: str, max_pages: int = 10) -> str | None:
    """The workspace holding `project_id` (FLORA lists projects per workspace only)."""
    from ..models import ListProjectsRequest

    for workspace_id in workspace_ids:
        cursor = None
        for _ in range(max_pages):
            page = await call.client.list_projects(ListProjectsRequest(workspace_id=workspace_id, limit=100,
                                                                       cursor=cursor))
            if any(p.project_id == project_id for p in page.projects):
                return workspace_id
            cursor = page.meta.next_cursor
            if not cursor:
                break
    return None


async def recent_project(call: ToolCall, workspace_id: str) -> str:
    """The most recently changed project in the workspace (for tools where any project will do)."""
    from ..models import ListProjectsRequest

    page = await call.client.list_projects(ListProjectsRequest(workspace_id=workspace_id, limit=1))
    if not page.projects:
        raise ToolInputError(f"workspace {workspace_id} has no projects: call create_project first")
    return page.projects[0].project_id


async def resolve_project(call: ToolCall, workspace_id: str, value: str | None) -> str:
    if value:
        return value
    if call.settings.project_id:
        return call.settings.project_id
    from ..models import ListProjectsRequest

    page = await call.client.list_projects(ListProjectsRequest(workspace_id=workspace_id, limit=5))
    if not page.projects:
        raise ToolInputError(f"project_id is required and workspace {workspace_id} has no projects: "
                             "call create_project first")
    names = {p.project_id: p.name for p in page.projects}
    raise ToolInputError(
        f"project_id is required. Recent projects in {workspace_id}: {_listing(names)}. "
        "Pass one, find others with list_projects(query=…), create one with create_project, "
        "or set FLORA_PROJECT_ID"
    )


def _same_name(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


async def project_by_name(call: ToolCall, name: str, workspace_id: str | None) -> tuple[str, str]:
    """(workspace_id, project_id) of the one project named `name` (case and spacing aside), looked for
    in the given workspace or else in every workspace of the key. Several or none: the answer says which."""
    from ..models import ListProjectsRequest

    workspaces = [workspace_id] if workspace_id else [w.workspace_id for w in await _workspaces(call)]
    found: list[tuple[str, str, str]] = []
    near: dict[str, str] = {}
    for ws in workspaces:
        page = await call.client.list_projects(ListProjectsRequest(workspace_id=ws, query=name, limit=100))
        for p in page.projects:
            if _same_name(p.name, name):
                found.append((ws, p.project_id, p.name))
            near[p.project_id] = f"{p.name}, {ws}"
    if len(found) == 1:
        return found[0][0], found[0][1]
    where = workspace_id or f"the key's {len(workspaces)} workspace(s)"
    if found:
        raise ToolInputError(f"project_id: {len(found)} projects are named {name!r} in {where}: "
                             + ", ".join(f"{p} ({w})" for w, p, _ in found) + "; pass one of these IDs")
    if re.fullmatch(r"[A-Za-z0-9_-]+", name) and await _workspace_of(call, workspaces, f"prj_{name}", max_pages=3):
        raise ToolInputError(f"project_id takes a prj_… ID, not {name!r}: use prj_{name}")
    if len(workspaces) == 1:  # a near name: the usual suggestion
        raise ToolInputError(await suggest_project(call, workspaces[0], name))
    hint = f"; similar: {_listing(near)}" if near else "; list_projects shows them, or create_project"
    raise ToolInputError(f"project_id: no project is named {name!r} in {where}{hint}")


async def suggest_workspace(call: ToolCall, value: str) -> str:
    names = {w.workspace_id: w.name for w in await _workspaces(call)}
    bare = value.strip()
    matches = [i for i in names if i == f"ws_{bare}"] or closest_ids(bare, names)
    if matches:
        hits = ", ".join(f"{m} ({names[m]})" for m in matches)
        return f"workspace_id takes a ws_… ID, not {value!r}: use {hits}"
    return f"workspace_id takes a ws_… ID from list_workspaces; {value!r} matches none. Available: {_listing(names)}"


async def suggest_project(call: ToolCall, workspace_id: str | None, value: str) -> str:
    try:
        workspace_id = await resolve_workspace(call, workspace_id)
    except ToolInputError:
        return f"project_id takes a prj_… ID from list_projects, not {value!r}"
    from ..models import ListProjectsRequest

    bare = value.strip()
    projects: list[Project] = []
    for query in (bare, None):
        page = await call.client.list_projects(ListProjectsRequest(workspace_id=workspace_id, query=query, limit=100))
        projects = page.projects
        if projects:
            break
    names = {p.project_id: p.name for p in projects}
    matches = [i for i in names if i == f"prj_{bare}"] or closest_ids(bare, names)
    if matches:
        hits = ", ".join(f"{m} ({names[m]})" for m in matches)
        return f"project_id takes a prj_… ID, not {value!r}: use {hits}"
    return (f"project_id takes a prj_… ID from list_projects; {value!r} matches no project in {workspace_id}. "
            f"Recent: {_listing(names)}; or create_project")


async def find_model(call: ToolCall, value: str, type_: str | None = None) -> Model:
    """The catalogue entry for an endpoint ID; a display name or typo answers with the right ID(s)."""
    models = await call.catalog()
    by_id = {m.model_id: m for m in models}
    if value in by_id:
        model = by_id[value]
        if type_ and model.type != type_:
            same = [m.model_id for m in models if m.type == type_][:5]
            raise ToolInputError(f"model {value} makes {model.type}, not {type_}: use type={model.type!r}, "
                                 f"or a {type_} model such as {', '.join(same)}")
        return model
    pool = {m.model_id: m.name for m in models if not type_ or m.type == type_}
    matches = closest_ids(value, pool) or closest_ids(value, {m.model_id: m.name for m in models})
    if matches:
        hits = ", ".join(f"{m} ({by_id[m].name})" for m in matches)
        raise ToolInputError(f"model takes an endpoint ID, not {value!r}: use {hits}")
    raise ToolInputError(f"model {value!r} is not in the catalogue. {'For type ' + type_ + ', c' if type_ else 'C'}hoose "
                  f"an endpoint ID from list_models: {', '.join(list(pool)[:6])}")


def _where(loc: tuple) -> str:
    """The field's path as the agent wrote it: without pydantic's validator tags ('function-before[…]',
    'constrained-str', 'list[…]') that a union or a validator adds to the location."""
    parts = [str(p) for i, p in enumerate(loc)
             if i == 0 or isinstance(p, int) or not ("[" in p or p.startswith(("constrained-", "function-")))]
    return ".".join(parts) or "arguments"


async def explain(exc: ValidationError, arguments: dict[str, Any], call: ToolCall,
                  request: type[BaseModel]) -> str:
    """One line per wrong argument, each naming the field and what to send instead."""
    lines: list[str] = []
    errors = exc.errors()
    extra = [e for e in errors if e.get("type") == "extra_forbidden"]
    said: set[str] = set()
    for err in errors:
        loc = err.get("loc") or ()
        name = str(loc[0]) if loc else "arguments"
        # A value that fits none of a union's forms (one run_id or a list) fails once per form: one line
        if len(loc) > 1 and isinstance(loc[1], str) and "[" in loc[1] and name in said:
            continue
        said.add(name)
        value = err.get("input")
        kind = err.get("type", "")
        try:
            if isinstance(value, str) and len(value) > _LONGEST_LOOKUP and kind in _ECHOING:  # no lookup, no echo
                line = f"{'.'.join(str(p) for p in loc)}: {len(value):,} characters is far too long here; {err.get('msg')}"
            else:
                line = await _explain_one(call, name, kind, value, arguments)
        except ToolInputError as guided:
            line = str(guided)
        except FloraError:
            line = None
        if line is None:
            if kind == "extra_forbidden":
                line = await _explain_extra(call, loc, extra, arguments, request)
            elif kind == "missing":
                line = f"{'.'.join(str(p) for p in loc)}: required"
            else:
                line = f"{_where(loc)}: {err.get('msg')}"
        if line not in lines:
            lines.append(line)
    return "; ".join(lines)


async def _explain_extra(call: ToolCall, loc: tuple, extra: list[dict[str, Any]], arguments: dict[str, Any],
                         request: type[BaseModel]) -> str:
    """Every unexpected key at this level, by name, and what belongs there instead."""
    parent = tuple(loc[:-1])
    keys = [str(e["loc"][-1]) for e in extra if tuple(e["loc"][:-1]) == parent]
    named = ", ".join(repr(k) for k in keys)
    if parent:  # inside a list item or object: say what that item takes
        where = ".".join(str(p) for p in parent)
        takes = {"inputs": "type, url, text (or a run's output object as is)"}.get(str(parent[0]), "")
        return f"{where}: unexpected key(s) {named}" + (f"; an item takes {takes}" if takes else "")
    takes = f"this tool takes {', '.join(request.model_fields)}"
    belong = [k for k in keys if k in await _model_param_names(call)] if "params" in request.model_fields else []
    if belong:  # a model setting at the top level: the fix first
        one = len(belong) == 1
        pairs = ", ".join(f"{{name: {k!r}, value: {arguments.get(k)!r}}}" for k in belong)
        rest = [k for k in keys if k not in belong]
        return (f"{', '.join(belong)} {'is a model param' if one else 'are model params'}: put {'it' if one else 'them'} "
                f"inside params: params=[{pairs}]" + (f"; {', '.join(rest)}: unknown; {takes}" if rest else ""))
    return f"{', '.join(keys)}: unknown argument{'s' if len(keys) > 1 else ''}; {takes}"


async def _model_param_names(call: ToolCall) -> set[str]:
    try:
        return {p.name for m in await call.catalog() for p in m.params}
    except FloraError:
        return set()


async def _explain_one(call: ToolCall, name: str, kind: str, value: Any, arguments: dict[str, Any]) -> str | None:
    if name == "type" and kind in ("literal_error", "enum", "string_type"):
        return explain_type(value)
    if name in ("workspace_id", "project_id", "run_id") and kind == "string_pattern_mismatch":
        if name == "workspace_id":
            return await suggest_workspace(call, value)
        if name == "project_id":
            ws = arguments.get("workspace_id")
            ws = ws if isinstance(ws, str) and ws.startswith("ws_") else None
            return await suggest_project(call, ws, value)
        # Offer the prefix only for what looks like a bare ID: never run_"run_…" or run_<a sentence>
        bare_id = isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_-]+", value) and not value.startswith("run")
        return (f"run_id takes the run_… ID that start_generation returned, not {value!r}"
                + (f": did you mean run_{value}?" if bare_id else "; list_runs lists the runs started here"))
    if name == "prompt" and kind == "prompt_too_long":
        limit = PROMPT_MAX_CHARS.get(str(arguments.get("type")), max(PROMPT_MAX_CHARS.values()))
        return (f"prompt: {len(str(value)):,} characters is more than the {limit:,} allowed for {arguments.get('type')} "
                "prompts here (models read far less, and FLORA would charge anyway). Shorten it")
    if name == "model" and kind == "string_pattern_mismatch":
        type_ = arguments.get("type") if arguments.get("type") in GENERATION_TYPES else None
        await find_model(call, str(value), type_)
    return None


# --- an action that does not exist: what comes closest by purpose ------------------------------------
_MEDIA_WORDS = {"image", "images", "img", "picture", "photo", "video", "videos", "clip", "audio", "sound", "text",
                "texts", "to", "a", "an", "the", "of", "from", "into", "make", "create", "do", "get", "new", "my"}
# What agents ask actions for that FLORA does with a model instead (words of the wish -> where to go).
_BY_MODEL = [
    ({"upscale", "upscaler", "enlarge", "enhance", "sharpen", "superres", "resize", "hd", "4k", "resolution"},
     "a larger image comes from a model: start_generation with a higher resolution param (list_models shows each "
     "model's options), or an image-to-image model given the image (list_models query='image-to-image')"),
    ({"background", "remove", "erase", "inpaint", "edit", "retouch", "restyle", "style", "recolor", "colorize"},
     "an image-to-image model edits an image from a prompt (list_models query='image-to-image')"),
    ({"animate", "motion", "move"}, "an image-to-video model (list_models query='image-to-video')"),
    ({"speak", "speech", "voice", "narrate", "tts", "read"}, "a text-to-speech model (list_models type='audio')"),
    ({"music", "song", "sfx"}, "a music or sound model (list_models type='audio')"),
    ({"translate", "summarize", "rewrite", "write", "caption"}, "a text model (list_models type='text')"),
]


def _words(text: str) -> set[str]:
    words = set(re.findall(r"[a-z0-9]+", text.lower()))
    return words | {w[:-1] for w in words if w.endswith("s") and len(w) > 3}


def no_such_action(action_id: str, actions: dict[str, Action]) -> str:
    """The answer for an action_id FLORA does not have: say so, then what comes closest by purpose (an
    action whose own words share the wish's verb, or the kind of model that does it), never spelling."""
    wish = _words(action_id) - _MEDIA_WORDS
    said = f"no action {action_id!r} exists"
    by_purpose = [a for a in actions.values()
                  if wish & (_words(f"{a.action_id} {a.name} {a.description or ''}") - _MEDIA_WORDS)]
    named = [a for a in by_purpose if wish <= _words(a.action_id)]
    if len(named) == 1:  # 'rotate': the one action named for it
        return f"{said}; use {named[0].action_id} ({(named[0].description or named[0].name).rstrip('.')})"
    if by_purpose:
        return f"{said}; closest by purpose: " + ", ".join(
            f"{a.action_id} ({(a.description or a.name).rstrip('.')})" for a in by_purpose[:3])
    for words, where in _BY_MODEL:
        if wish & words:
            return f"{said}, and no action does that; closest by purpose: {where}"
    return (f"{said}, and none does {' '.join(sorted(wish)) or 'that'}: list_actions shows the {len(actions)} there "
            "are (query= filters them); send_feedback can tell FLORA it is missing")


def action_answer(action_id: str, actions: dict[str, Action]) -> str:
    """An unknown action_id: the same ID spelled otherwise ('Rotate_Image') is named; anything else gets
    no_such_action's answer by purpose."""
    same = [i for i in actions if _norm(i) == _norm(action_id) or _norm(actions[i].name) == _norm(action_id)]
    if same:
        return f"{action_id!r} is spelled {same[0]!r} (as list_actions shows)"
    return no_such_action(action_id, actions)
