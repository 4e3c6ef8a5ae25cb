"""The one server factory every transport uses (stdio, SSE, Streamable HTTP).

    server = create_server()                    # settings from the environment, read now
    server = create_server(settings, client=c)  # tests: any FloraClient, e.g. Sandbox().client()

Transports only adapt bytes; the tools, their schemas and their behaviour live here.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.server.mcpserver.resources import BinaryResource, Resource, ResourceTemplate, TextResource
from mcp.server.mcpserver.resources.templates import DEFAULT_RESOURCE_SECURITY
from mcp.shared.uri_template import UriTemplate
from mcp_types import EmptyResult, SetLevelRequestParams

from .. import __version__
from .._recent import Recent
from ..config import Settings, load_settings, state_url
from ..connect import build_client
from ..toolsets import parse_toolsets
from .session import ToolCall, UserState, connection_of
from .tooling import ToolSpec, build_tool

if TYPE_CHECKING:
    from ..client import FloraClient
    from ..ledger import Ledger

logger = logging.getLogger("flora_mcp.server")

INSTRUCTIONS = (
    "Make images, video, audio and text with FLORA. Flow: list_workspaces -> list_projects (or create_project) "
    "-> list_models -> start_generation, which waits and returns outputs with previews; if it returns a run "
    "still running, call get_run with its run_id. IDs: ws_..., prj_..., run_...; models by endpoint ID. "
    "An output object can be passed back as an input; its flora:// link is readable as a resource."
)

ApiKeyFor = Callable[[Context], str | None]


def all_tools() -> list[ToolSpec]:
    from .tools import actions, assets, canvas, discovery, feedback, generation

    return [*discovery.TOOLS, *generation.TOOLS, *actions.ACTION_TOOLS, *actions.TECHNIQUE_TOOLS, *assets.TOOLS,
            *canvas.TOOLS, *feedback.TOOLS]


def select_tools(settings: Settings) -> list[ToolSpec]:
    """The tools this configuration exposes: chosen toolsets, minus anything paid in read-only mode."""
    wanted = parse_toolsets(settings.toolsets)
    return [t for t in all_tools() if t.toolset in wanted and (t.read_only or not settings.read_only)]


class _Backend:
    """Builds the FLORA client on first use, so start-up stays light and a missing key is no crash."""

    def __init__(self, settings: Settings, client: FloraClient | None, ledger: Ledger | None) -> None:
        self.settings = settings
        self._client = client
        self._ledger = ledger
        self.users: Recent = Recent(10_000)  # one entry per API key seen (hosted: per user)
        self.log_levels: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # connection -> level

    def client(self) -> FloraClient:
        if self._client is None:
            key = self.settings.api_key.get_secret_value() if self.settings.api_key else None
            self._client = build_client(self.settings, key)
        return self._client

    def ledger(self) -> Ledger:
        if self._ledger is None:
            from ..ledger import open_ledger

            self._ledger = open_ledger(state_url(self.settings))
        return self._ledger

    def call(self, client: FloraClient, ctx: Context, *, hosted: bool = False) -> ToolCall:
        tag = client.user_id
        state = self.users.get(tag)
        if state is None:
            state = self.users[tag] = UserState()
        return ToolCall(client, self.settings, state, self.ledger(), tag, ctx, self.log_levels, hosted=hosted)


def create_server(
    settings: Settings | None = None,
    *,
    client: FloraClient | None = None,
    api_key_for: ApiKeyFor | None = None,
    ledger: Ledger | None = None,
) -> MCPServer:
    """An MCPServer with FLORA's tools.

    `api_key_for` (hosted mode) returns the calling user's key for a request; their calls then run
    on a view of the shared client with that key, and their state is kept apart from other users'.
    `ledger` defaults to the one FLORA_STATE_URL names (see config.state_url), opened on first use.
    """
    settings = settings or load_settings()
    backend = _Backend(settings, client, ledger)

    async def open_call(ctx: Context) -> ToolCall:
        base = backend.client()
        if api_key_for is None:
            return backend.call(base, ctx)
        return backend.call(base.with_api_key(api_key_for(ctx)), ctx, hosted=True)

    tools = [build_tool(spec, open_call) for spec in select_tools(settings)]
    server = MCPServer(
        name="flora-mcp",
        title="FLORA",
        version=__version__,
        instructions=INSTRUCTIONS,
        website_url="https://app.flora.ai",
        tools=tools,
        log_level=settings.log_level.upper(),  # type: ignore[arg-type]
        subscriptions=False,  # nothing here changes while connected: no listChanged or subscribe to promise
    )
    _serve_log_levels(server, backend.log_levels)
    _serve_outputs(server, open_call)
    _drop_prompts(server)
    return server


def _serve_log_levels(server: MCPServer, levels: weakref.WeakKeyDictionary) -> None:
    """logging/setLevel: we send MCP log messages, so clients may choose how many (per connection).

    MCPServer has no public hook for it; the low-level server's request table is the SDK's own
    extension point (and declares the `logging` capability once the handler exists).
    """

    async def set_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
        levels[connection_of(ctx.session)] = params.level
        return EmptyResult()

    server._lowlevel_server.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)


class _OutputTemplate(ResourceTemplate):
    """flora://runs/{run_id}/outputs/{output_id}: a run's output, read with the caller's own key.

    A subclass because the SDK's templates give every resource the template's one MIME type;
    an output's comes from the file.
    """

    async def create_resource(self, uri: str, params: dict[str, Any], context: Any) -> Resource:
        from ..errors import FloraError
        from .outputs import read_output

        call = await self.fn(context)
        try:
            content, mime = await read_output(call.client, str(params["run_id"]), str(params["output_id"]))
        except FloraError as exc:
            raise ResourceError(str(exc)) from None
        return TextResource(uri=uri, name=self.name, text=content, mime_type=mime) if isinstance(content, str) \
            else BinaryResource(uri=uri, name=self.name, data=content, mime_type=mime)


def _serve_outputs(server: MCPServer, open_call: Callable[[Context], Any]) -> None:
    """The resource links in tool results point here; resources/read streams the file through us."""
    from .outputs import OUTPUT_URI

    template = _OutputTemplate(
        uri_template=OUTPUT_URI, name="run_output", fn=open_call, parsed_template=UriTemplate.parse(OUTPUT_URI),
        description="A finished run's output file (links in start_generation/get_run results); read with your key",
        mime_type="application/octet-stream", security=DEFAULT_RESOURCE_SECURITY,
        parameters={"type": "object", "properties": {"run_id": {"type": "string"}, "output_id": {"type": "string"}}})
    # MCPServer registers templates from functions only; ours needs the file's MIME type (see above).
    server._resource_manager._templates[template.uri_template] = template


def _drop_prompts(server: MCPServer) -> None:
    """MCPServer always serves prompts/list, which declares a prompts capability; we have none."""
    handlers = server._lowlevel_server._request_handlers
    handlers.pop("prompts/list", None)
    handlers.pop("prompts/get", None)
