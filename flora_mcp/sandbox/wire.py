"""How the sandbox speaks on the wire, as FLORA does: the error envelope, 400 field lists, cursor
pages, JSON bodies, and the ID shapes it accepts."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

ID_PATTERNS = {"workspace_id": re.compile(r"^ws_\S+$"), "project_id": re.compile(r"^prj_\S+$")}
TYPES = ("image", "video", "audio", "text")


def error(status: int, code: str, message: str, fields: list[dict[str, str]] | None = None,
          headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def validation_error(fields: list[dict[str, str]]) -> JSONResponse:
    message = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return error(400, "input_validation_error", message, fields)


def page_window(q: Any) -> tuple[int, int] | Response:
    """A list endpoint's (offset, limit) from its `cursor` and `limit` (1-100, default 20), or the 400."""
    try:
        limit = int(q.get("limit", 20))
        offset = int(base64.urlsafe_b64decode(q["cursor"]).decode()) if q.get("cursor") else 0
    except ValueError:
        return validation_error([{"field": "limit/cursor", "message": "Invalid value"}])
    if not 1 <= limit <= 100:
        return validation_error([{"field": "limit", "message": "Number must be between 1 and 100"}])
    return offset, limit


def page_meta(offset: int, limit: int, total: int) -> dict[str, Any]:
    more = offset + limit < total
    cursor = base64.urlsafe_b64encode(str(offset + limit).encode()).decode() if more else None
    return {"next_cursor": cursor, "total_estimate": total}


async def json_body(request: Request) -> dict[str, Any] | Response:
    try:
        body = json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return error(400, "invalid_json", "Request body is not valid JSON")
    if not isinstance(body, dict):
        return error(400, "invalid_json", "Request body must be a JSON object")
    return body
