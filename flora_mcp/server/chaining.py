"""Outputs as inputs: a run's output object (or upload_asset's answer) is accepted wherever a tool
takes an image, video, audio or text input, so an agent can pass one answer straight to the next call.

An output row looks like {"type": "imageUrl", "id": "output_1", "url": "https://…", "mime": "image/png"}
(plus facts such as bytes, size, seconds, preview); an input wants {"type": "image", "url": "https://…"}.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..errors import FloraError
from .tooling import ToolInputError

if TYPE_CHECKING:
    from ..client import FloraClient

OUTPUT_URI_PATTERN = re.compile(r"^flora://runs/(run_[^/]+)/outputs/([^/]+)$")
OUTPUT_TYPES = {"imageUrl": "image", "videoUrl": "video", "audioUrl": "audio", "documentUrl": "document"}
# Facts a tool result adds to an output row (or upload_asset to an asset): they describe the file,
# so an input can ignore them.
OUTPUT_FACTS = frozenset({"id", "mime", "bytes", "size", "seconds", "preview", "path", "note",
                          "asset_id", "status", "content_type", "next"})


def is_output(value: Any) -> bool:
    return isinstance(value, dict) and "url" in value and (value.get("type") in OUTPUT_TYPES or "id" in value)


def as_input_item(value: Any) -> Any:
    """An output row becomes {type, url}; anything else is returned unchanged (and validated as given)."""
    if not isinstance(value, dict):
        return value
    item = {k: v for k, v in value.items() if k not in OUTPUT_FACTS}
    if isinstance(item.get("type"), str) and item["type"] in OUTPUT_TYPES:
        item["type"] = OUTPUT_TYPES[item["type"]]
    return item


def as_value(value: Any) -> Any:
    """An output object given as a single value (a technique input, an image_url param) becomes its URL,
    or its text for a text output."""
    if isinstance(value, dict) and value.get("type") == "text" and "text" in value and "url" not in value:
        return value["text"]
    if is_output(value):
        return value["url"]
    if isinstance(value, list) and any(is_output(v) for v in value):
        return [as_value(v) for v in value]
    return value


async def resolve_output_uris(client: FloraClient, values: list[Any]) -> list[Any]:
    """Each flora://runs/{run_id}/outputs/{output_id} (a resource link's URI) becomes the output's URL."""
    resolved = []
    for value in values:
        match = OUTPUT_URI_PATTERN.match(value) if isinstance(value, str) else None
        if match:
            run_id, output_id = match.groups()
            try:
                run = await client.get_run(run_id)
            except FloraError as exc:
                raise ToolInputError(f"{value}: {exc}") from None
            url = next((o.url for o in run.outputs if o.output_id == output_id), None)
            if url is None:
                raise ToolInputError(f"{value}: run {run_id} has no output {output_id!r}")
            value = url
        resolved.append(value)
    return resolved
