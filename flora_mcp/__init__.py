"""flora-mcp: an MCP server for the FLORA creative API.

Kept import-light on purpose: the stdio server's start-up time is part of the product.
"""

__version__ = "0.1.0"
