"""The one server factory every transport uses (stdio, SSE, Streamable HTTP).

    server = create_server()                                 # settings from the environment; FLORA itself
    server = create_server(settings, connect=build_client)   # the edges: FLORA or the sandbox, as settings say
    server = create_server(settings, client=c)               # tests: any FloraClient, e.g. Sandbox().client()

Transports only adapt bytes; the tools, their schemas and their behaviour live here. Where the FLORA client
comes from is the edge's choice (cli, demo and the transports pass connect.build_client): the server never
imports the sandbox.
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

from .. import sdk_internals
from .._recent import Recent
from .._version import __version__
from ..config import Settings, load_settings, state_url
from ..errors import ConfigurationError
from ..telemetry import configure as configure_telemetry
from ..telemetry import instrument_ledger, instrument_server
from ..toolsets import parse_toolsets
from .app import bind_app
from .dispatch import build_tool
from .toolcall import ToolCall, UserState
from .tooling import ToolSpec

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
ClientFactory = Callable[[Settings, str | None], "FloraClient"]  # (settings, API key) -> the FLORA client


def flora_itself(settings: Settings, api_key: str | None) -> FloraClient:
    """The client factory when none is passed: FLORA at settings.base_url."""
    if settings.sandbox:
        raise ConfigurationError("FLORA_SANDBOX is set, but this server was given no client factory that knows "
                                 "the sandbox: create_server(settings, connect=flora_mcp.build_client)")
    from ..client import FloraClient  # on first use: keeps the API models off the start-up path
    from ..retry import RetryPolicy

    return FloraClient(api_key, base_url=settings.base_url, timeout=settings.timeout,
                       retry=RetryPolicy(max_retries=settings.max_retries))


def all_tools() -> list[ToolSpec]:
    from .tools import actions, assets, canvas, discovery, feedback, generation, history

    return [*discovery.TOOLS, *generation.CORE_TOOLS, *history.TOOLS, *generation.BATCH_TOOLS, *actions.ACTION_TOOLS,
            *actions.TECHNIQUE_TOOLS, *assets.TOOLS, *canvas.TOOLS, *feedback.TOOLS]


def select_tools(settings: Settings) -> list[ToolSpec]:
    """The tools this configuration exposes: chosen toolsets, minus anything paid in read-only mode."""
    wanted = parse_toolsets(settings.toolsets)
    return [t for t in all_tools() if t.toolset in wanted and (t.read_only or not settings.read_only)]


class _Backend:
    """Builds the FLORA client on first use, so start-up stays light and a missing key is no crash."""

    def __init__(self, settings: Settings, client: FloraClient | None, connect: ClientFactory,
                 ledger: Ledger | None) -> None:
        self.settings = settings
        self._client = client
        self._connect = connect
        self._ledger = instrument_ledger(ledger)
        self.users: Recent = Recent(10_000)  # one entry per API key seen (hosted: per user)
        self.log_levels: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # connection -> level

    def client(self) -> FloraClient:
        if self._client is None:
            key = self.settings.api_key.get_secret_value() if self.settings.api_key else None
            self._client = self._connect(self.settings, key)
        return self._client

    def ledger(self) -> Ledger:
        if self._ledger is None:
            from ..ledger import open_ledger

            self._ledger = instrument_ledger(open_ledger(state_url(self.settings)))
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
    connect: ClientFactory = flora_itself,
    api_key_for: ApiKeyFor | None = None,
    ledger: Ledger | None = None,
) -> MCPServer:
    """An MCPServer with FLORA's tools.

    The FLORA client is `client`, or `connect(settings, api_key)` on first use (FLORA itself by default;
    flora_mcp.build_client also knows the sandbox).
    `api_key_for` (hosted mode) returns the calling user's key for a request; their calls then run
    on a view of the shared client with that key, and their state is kept apart from other users'.
    `ledger` defaults to the one FLORA_STATE_URL names (see config.state_url), opened on first use.
    """
    settings = settings or load_settings()
    configure_telemetry(settings)  # OTEL_* / FLORA_METRICS, once per process; off costs nothing
    backend = _Backend(settings, client, connect, ledger)

    async def open_call(ctx: Context) -> ToolCall:
        base = backend.client()
        if api_key_for is None:
            return backend.call(base, ctx)
        return backend.call(base.with_api_key(api_key_for(ctx)), ctx, hosted=True)

    tools = [build_tool(spec, open_call) for spec in select_tools(settings)]
    from .tasks import TasksExtension

    tasks = TasksExtension()  # MCP Tasks for the clients that opt in (server/tasks.py)
    server = MCPServer(
        name="flora-mcp",
        title="FLORA",
        version=__version__,
        instructions=INSTRUCTIONS,
        website_url="https://app.flora.ai",
        tools=tools,
        log_level=settings.log_level.upper(),  # type: ignore[arg-type]
        subscriptions=False,  # nothing here changes while connected: no listChanged or subscribe to promise
        extensions=[bind_app(tools, settings), tasks],  # the MCP App next to results; long runs as MCP tasks
    )
    tasks.bind(server, open_call)
    instrument_server(server, [t.name for t in tools])
    _serve_log_levels(server, backend.log_levels)
    _serve_outputs(server, open_call)
    _drop_prompts(server)
    return server


def _serve_log_levels(server: MCPServer, levels: weakref.WeakKeyDictionary) -> None:
    """logging/setLevel: we send MCP log messages, so clients may choose how many (per connection).

    MCPServer has no public hook for it: see sdk_internals.add_request_handler.
    """

    async def set_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
        levels[sdk_internals.connection_of(ctx.session)] = params.level
        return EmptyResult()

    sdk_internals.add_request_handler(server, "logging/setLevel", SetLevelRequestParams, set_level)


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
    sdk_internals.add_resource_template(server, template)


def _drop_prompts(server: MCPServer) -> None:
    """MCPServer always serves prompts/list, which declares a prompts capability; we have none."""
    sdk_internals.drop_request_handlers(server, "prompts/list", "prompts/get")
