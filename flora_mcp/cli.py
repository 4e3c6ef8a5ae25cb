"""Command line: `flora-mcp` (stdio server), `--sandbox`, `--transport http|sse`, `sandbox`, `demo`.

Nothing here may write to stdout in stdio mode: stdout belongs to the MCP protocol.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ._version import __version__
from .toolsets import CHOICES as TOOLSET_CHOICES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flora-mcp", description="MCP server for the FLORA creative API.")
    p.add_argument("--version", action="version", version=f"flora-mcp {__version__}")
    p.add_argument("--sandbox", action="store_true", default=None,
                   help="use the embedded FLORA sandbox (no key, no network)")
    p.add_argument("--transport", choices=["stdio", "http", "sse"], default=None,
                   help="stdio (default), http (Streamable HTTP at /mcp) or sse (legacy, /sse)")
    p.add_argument("--host", default=None, help="HTTP bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="HTTP port (default 8000)")
    p.add_argument("--toolsets", default=None, help=f"toolsets to expose: {TOOLSET_CHOICES}")
    p.add_argument("--read-only", action="store_true", default=None, help="expose no paid or mutating tool")
    p.add_argument("--log-level", default=None, help="stderr log level (default INFO)")
    sub = p.add_subparsers(dest="command")
    sb = sub.add_parser("sandbox", help="run the embedded FLORA sandbox as an HTTP API")
    sb.add_argument("--host", dest="sandbox_host", default="127.0.0.1")
    sb.add_argument("--port", dest="sandbox_port", type=int, default=8765)
    sb.add_argument("--speed", type=float, default=5.0, help="how much faster than real time runs progress")
    sb.add_argument("--idempotency", choices=["conflict", "replay"], default="conflict",
                    help="a reused Idempotency-Key: 409 as FLORA's spec says, or the first answer replayed as its "
                         "docs say")
    demo = sub.add_parser("demo", help="a scripted agent session against the sandbox")
    demo.add_argument("--prompt", default=None)
    demo.add_argument("--output", type=Path, default=Path("flora-output"), help="where outputs are saved")
    demo.add_argument("--app", nargs="?", type=Path, const=Path("flora-output/flora-app.html"), default=None,
                      metavar="PAGE", help="also write the MCP App as a host shows it (default flora-output/flora-app.html)")
    return p


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One line per HTTP request is noise at INFO (and would name every URL); our client logs retries.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("httpcore2").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        import anyio

        from .demo import DEFAULT_PROMPT, run_demo

        _configure_logging("WARNING")
        return anyio.run(run_demo, args.prompt or DEFAULT_PROMPT, args.output, 4.0, args.app)
    if args.command == "sandbox":
        _configure_logging(args.log_level or "INFO")
        return _run_sandbox(args.sandbox_host, args.sandbox_port, args.speed, args.idempotency)

    from .config import SettingsError, load_settings

    options = {"sandbox": args.sandbox, "toolsets": args.toolsets, "read_only": args.read_only,
               "log_level": args.log_level, "host": args.host, "port": args.port}
    try:
        settings = load_settings(**options)
    except SettingsError as exc:  # one line, naming the variable or option, then exit 2 (usage error)
        print(f"flora-mcp: {exc.describe({name: '--' + name.replace('_', '-') for name in options})}",
              file=sys.stderr)
        return 2
    _configure_logging(settings.log_level)
    problem = _ledger_problem(settings)
    if problem:  # one line, like a bad setting: the server never starts on a ledger it cannot use
        print(f"flora-mcp: {problem}", file=sys.stderr)
        return 2
    transport = args.transport or "stdio"
    if transport == "stdio":
        from .connect import build_client
        from .server import create_server

        create_server(settings, connect=build_client).run("stdio")
        return 0
    from .transports.http import serve

    # One ASGI app serves both: Streamable HTTP at /mcp and legacy SSE at /sse.
    return serve(settings, transport=transport)


def _ledger_problem(settings: object) -> str | None:
    """Open the ledger FLORA_STATE_URL names and read from it once: why it cannot be used, or None."""
    import anyio

    from .config import state_url
    from .ledger import LedgerUnavailable, open_ledger

    async def check() -> None:
        ledger = open_ledger(state_url(settings))  # type: ignore[arg-type]
        try:
            await ledger.totals("startup-check", 1.0)
        finally:
            await ledger.aclose()

    try:
        anyio.run(check)
    except LedgerUnavailable as exc:
        return f"FLORA_STATE_URL: {exc}"
    return None


def _run_sandbox(host: str, port: int, speed: float, idempotency: str) -> int:
    import uvicorn

    from .sandbox import SANDBOX_API_KEY, Sandbox

    sandbox = Sandbox(speed=speed, public_base_url=f"http://{host}:{port}", idempotency_mode=idempotency)
    print(f"FLORA sandbox on http://{host}:{port}/api/v1  (key: {SANDBOX_API_KEY})", file=sys.stderr)
    uvicorn.run(sandbox.app, host=host, port=port, log_level="warning")
    return 0
