"""Every tool's published schema, compared with a committed snapshot: a schema change is always a
deliberate diff. One file per tool (tests/snapshots/tools/<name>.json, with the MCP App's `_meta.ui` where
a tool has one) and the tools/list order in tests/snapshots/tools/ORDER.
After an intended change: UPDATE_SNAPSHOTS=1 pytest tests/test_schema_snapshot.py"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mcp.client import Client

from flora_mcp.server import all_tools, create_server
from flora_mcp.server.dispatch import PUBLISHED_SCHEMAS, input_schema, published_schemas
from tests.helpers import settings

SNAPSHOTS = Path(__file__).parent / "snapshots" / "tools"
ORDER = SNAPSHOTS / "ORDER"


def test_published_schemas_are_the_request_models_schemas():
    """The server publishes schemas.json at start-up (it is faster than generating); it must say
    exactly what the pydantic request models say."""
    generated = {spec.name: input_schema(spec.request) for spec in all_tools()}
    if os.environ.get("UPDATE_SNAPSHOTS"):
        PUBLISHED_SCHEMAS.write_text(json.dumps(generated, indent=1, sort_keys=True) + "\n")
        published_schemas.cache_clear()
    assert published_schemas() == generated, "schemas.json is stale: UPDATE_SNAPSHOTS=1 to regenerate"


async def test_tools_list_matches_snapshot():
    async with Client(create_server(settings(sandbox=True))) as client:
        tools = (await client.list_tools()).tools
    current = {t.name: json.dumps(t.model_dump(mode="json", by_alias=True, exclude_none=True), indent=2,
                                  sort_keys=True, ensure_ascii=False) + "\n" for t in tools}
    order = "".join(f"{name}\n" for name in current)
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOTS.mkdir(exist_ok=True)
        for stale in set(SNAPSHOTS.glob("*.json")) - {SNAPSHOTS / f"{name}.json" for name in current}:
            stale.unlink()
        for name, text in current.items():
            (SNAPSHOTS / f"{name}.json").write_text(text)
        ORDER.write_text(order)
    stored = {p.stem: p.read_text() for p in SNAPSHOTS.glob("*.json")}
    changed = sorted(name for name in current.keys() | stored.keys() if current.get(name) != stored.get(name))
    assert changed == [], f"tool schemas changed ({', '.join(changed)}): review, then UPDATE_SNAPSHOTS=1 to accept"
    assert ORDER.read_text() == order, "the tools/list order changed: review, then UPDATE_SNAPSHOTS=1 to accept"


async def test_tools_list_stays_small():
    """Agents pay for tools/list on every turn; peers spend 1-2.6 KB per tool. Portable schemas (every
    optional field nullable, every object's properties declared: test_portable_schemas.py) cost
    about 2.5 KB over the whole list; the paid tools carry the most."""
    async with Client(create_server(settings(sandbox=True))) as client:
        tools = (await client.list_tools()).tools
    # The MCP App's `_meta.ui` pointers are measured apart (tests/test_app.py): each is a fixed ~45 bytes.
    sizes = [len(json.dumps(t.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"meta"}),
                            separators=(",", ":"))) for t in tools]
    # Portable schemas (nullable types spelled out, params as [{name, value}]) and the controls that keep
    # a retry from paying twice cost bytes; run_action and start_generation are the largest. Issue 23 added
    # max_usd (~90 bytes per paid tool) and writes nullable fields as anyOf [X, null] (~20 bytes each more than
    # "type": [X, "null"], which fast-agent's Gemini converter rejects): +10% over the list. run_canvas_action,
    # paid too, got its max_usd later (+69 bytes): 803.5 on average then.
    assert max(sizes) < 2000 and sum(sizes) / len(sizes) < 810, sizes
