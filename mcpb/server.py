"""Entry point of the flora-mcp MCP Bundle (.mcpb).

Claude Desktop runs it with uv (manifest.json: server.type "uv"), which first installs this folder's
pyproject.toml, i.e. flora-mcp and its dependencies. Settings arrive as FLORA_* variables filled in from
the bundle's user_config; an empty one counts as unset.
"""

import sys

from flora_mcp.cli import main

sys.exit(main())
