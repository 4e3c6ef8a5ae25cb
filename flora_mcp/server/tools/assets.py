"""Uploading the user's own files, so image-to-video, actions and techniques can start from them.

stdio mode reads a local file the user names. The hosted server never reads its own disk: there,
only a public http(s) URL is accepted, and never one that points into the server's own network.
"""

from __future__ import annotations

import ipaddress
import mimetypes
import socket
from pathlib import Path
from typing import Annotated

import anyio
from pydantic import Field

from ...errors import FloraError
from .._registry import ToolInputError, ToolResult, ToolSpec
from ..guidance import resolve_workspace
from ..outputs import fetch
from ..params import ToolArgs, WorkspaceParam
from ..session import ToolCall

MAX_UPLOAD_BYTES = 50 * 1024 * 1024


class UploadAsset(ToolArgs):
    path: Annotated[str | None, Field(description="Local file (stdio only)")] = None
    url: Annotated[str | None, Field(description="http(s) URL to copy")] = None
    workspace_id: WorkspaceParam = None


def _read_local(path_text: str) -> tuple[bytes, str]:
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise ToolInputError(f"path: {path} is not a readable file")
    size = path.stat().st_size
    if size == 0 or size > MAX_UPLOAD_BYTES:
        raise ToolInputError(f"path: {path} is {size} bytes; uploads take 1 byte to {MAX_UPLOAD_BYTES // 2**20} MB")
    return path.read_bytes(), path.name


async def _refuse_private(url: str) -> None:
    """Hosted mode: a URL must not reach into the server's own network (no SSRF through us)."""
    host = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1].split(":")[0].strip("[]")
    try:
        infos = await anyio.to_thread.run_sync(lambda: socket.getaddrinfo(host, None))
    except OSError:
        raise ToolInputError(f"url: cannot resolve {host}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address.is_private or address.is_loopback or address.is_link_local or address.is_reserved:
            raise ToolInputError("url: this server does not fetch addresses on private networks")


async def upload_asset(req: UploadAsset, call: ToolCall) -> ToolResult:
    if bool(req.path) == bool(req.url):
        raise ToolInputError("pass exactly one of path (a local file, stdio only) or url (http/https)")
    if req.path:
        if call.hosted:
            raise ToolInputError("path: a hosted server never reads its own disk; pass a public url instead")
        data, filename = await anyio.to_thread.run_sync(_read_local, req.path)
    else:
        url = req.url or ""
        if not url.startswith(("http://", "https://")):
            raise ToolInputError("url: must be http(s)")
        if call.hosted:
            await _refuse_private(url)
        try:
            data, _ = await fetch(call.client, url, MAX_UPLOAD_BYTES, follow_redirects=not call.hosted)
        except FloraError as exc:
            raise ToolInputError(f"url: {exc.message}") from None
        filename = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "upload"
    from ...models import UploadRequest

    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    workspace_id = await resolve_workspace(call, req.workspace_id)
    asset = await call.client.upload_asset(
        UploadRequest(workspace_id=workspace_id, filename=filename, content_type=content_type, size=len(data)), data)
    return ToolResult({"asset_id": asset.asset_id, "status": asset.status, "url": asset.url, "type": asset.type,
                       "content_type": asset.content_type, "bytes": asset.size,
                       "next": "use url as an input of run_action / run_technique, or as a model's image_url param"})


TOOLS = [
    ToolSpec("upload_asset", "Upload a local file or URL to FLORA; returns a URL for inputs.",
             UploadAsset, upload_asset, "assets", read_only=False, idempotent=False),
]
