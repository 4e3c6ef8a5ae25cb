"""The floors flora-mcp is measured beside.

    python benchmarks/floor_server.py                 # stdio: a one-tool server on the bare MCP SDK
    python benchmarks/floor_server.py http PORT       # the same over stateless Streamable HTTP (the SDK's own path)
    python benchmarks/floor_server.py http-fast PORT  # the same through flora-mcp's stateless fast path
    python benchmarks/floor_server.py starlette PORT  # bare Starlette answering the JSON-RPC call: the physical floor

Every HTTP floor runs under uvicorn with no access log; an optional third argument picks the server stack,
`asyncio` (asyncio + h11) or `uvloop` (uvloop + httptools, the default when installed).
"""

import sys

from mcp.server import MCPServer

server = MCPServer("floor")


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return text


def starlette_app():
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def mcp(request: Request) -> JSONResponse:
        call = await request.json()
        text = call["params"]["arguments"]["text"]
        return JSONResponse({"jsonrpc": "2.0", "id": call["id"],
                             "result": {"content": [{"type": "text", "text": text}], "isError": False}})

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/mcp", mcp, methods=["POST"]), Route("/healthz", healthz)])


def sdk_app(fast: bool):
    import logging
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    # As flora-mcp does: no "Terminating session: None" INFO line per stateless request.
    logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)
    streamable = server.streamable_http_app(stateless_http=True)
    routes = list(streamable.routes)
    if fast:
        sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])
        from flora_mcp.transports.fastpath import with_fast_path

        routes = with_fast_path(routes, server.session_manager)

    @asynccontextmanager
    async def lifespan(app):
        async with server.session_manager.run():
            yield

    async def healthz(request):
        return JSONResponse({"ok": True})

    return Starlette(routes=[*routes, Route("/healthz", healthz)], lifespan=lifespan)


if __name__ == "__main__":
    if len(sys.argv) > 2:
        import logging

        import uvicorn

        logging.basicConfig(level=logging.WARNING)
        mode, port = sys.argv[1], int(sys.argv[2])
        stack = sys.argv[3] if len(sys.argv) > 3 else "auto"
        loop, http = {"asyncio": ("asyncio", "h11"), "uvloop": ("uvloop", "httptools")}.get(stack, ("auto", "auto"))
        app = starlette_app() if mode == "starlette" else sdk_app(fast=mode == "http-fast")
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, loop=loop, http=http)
    else:
        server.run("stdio")
