"""The toolsets (named sets of tools) a server can expose. The one list the CLI help, the settings and the server read.

Kept free of imports: `flora-mcp --help` and the settings need it without loading the MCP SDK.
"""

from __future__ import annotations

TOOLSETS = ("core", "batch", "actions", "techniques", "assets", "canvas")
CHOICES = f"{', '.join(TOOLSETS)} or all, comma-separated"


def parse_toolsets(value: str) -> frozenset[str]:
    """'core,batch' -> those groups; '' or 'all' -> every group. An unknown name is a ValueError."""
    wanted = {name.strip().lower() for name in value.split(",") if name.strip()}
    if not wanted or "all" in wanted:
        return frozenset(TOOLSETS)
    unknown = sorted(wanted - set(TOOLSETS))
    if unknown:
        raise ValueError(f"Unknown toolset {', '.join(map(repr, unknown))} (choose from {CHOICES})")
    return frozenset(wanted)
