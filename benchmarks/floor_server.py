"""The floor: a one-tool server on the bare MCP SDK, measured beside flora-mcp.

    python benchmarks/floor_server.py            # stdio
    python benchmarks/floor_server.py http PORT  # stateless Streamable HTTP on loopback
"""

import sys

from mcp.server import MCPServer

server = MCPServer("floor")


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return text


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]), stateless_http=True)
    else:
        server.run("stdio")
