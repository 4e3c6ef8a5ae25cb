"""Uploading the user's own files, so image-to-video, actions and techniques can start from them.

stdio mode reads a local file the user names. The hosted server never reads its own disk: there,
only a public http(s) URL is accepted, and never one that points into the server's own network
(urlfetch.py guards the connection itself). Files stream through; none is held whole in memory.
"""

from __future__ import annotations

import mimetypes
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import IO, Annotated, Any

import anyio
from pydantic import Field

from ...errors import FloraError
from ...urlfetch import MAX_URL_LENGTH, UrlRefused, check_url, spool
from ..arguments import ToolArgs, WorkspaceParam
from ..guidance import resolve_workspace
from ..toolcall import ToolCall
from ..tooling import ToolInputError, ToolResult, ToolSpec

MAX_UPLOAD_BYTES = 50 * 1024 * 1024


class UploadAsset(ToolArgs):
    path: Annotated[str | None, Field(description="Local file (stdio only)", max_length=4096)] = None
    url: Annotated[str | None, Field(description="http(s) URL to copy", max_length=MAX_URL_LENGTH)] = None
    workspace_id: WorkspaceParam = None


def _open_local(path_text: str) -> tuple[IO[bytes], int, str]:
    try:
        path = Path(path_text).expanduser()
        if not path.is_file():
            raise ToolInputError(f"path: {path_text[:200]} is not a readable file")
        size = path.stat().st_size
        if size == 0 or size > MAX_UPLOAD_BYTES:
            raise ToolInputError(f"path: {path} is {size} bytes; uploads take 1 byte to "
                                 f"{MAX_UPLOAD_BYTES // 2**20} MB")
        return path.open("rb"), size, path.name
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, no permission
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ToolInputError(f"path: cannot read this file ({reason}); pass the path of a readable file") from None


async def _download(call: ToolCall, url: str) -> tuple[IO[bytes], int]:
    """The URL's body in a temporary file. Hosted: through the guarded pool that never reaches a private
    network; stdio: like any output download (a local user may fetch from their own machine)."""
    try:
        check_url(url)
        opened: AbstractAsyncContextManager[Any] = (
            call.client.open_user_url(url) if call.hosted else call.client.stream_output(url))
        async with opened as response:
            return await spool(response, MAX_UPLOAD_BYTES)
    except UrlRefused as exc:
        raise ToolInputError(f"url: {exc}") from None
    except FloraError as exc:
        raise ToolInputError(f"url: {exc.message}") from None


async def upload_asset(req: UploadAsset, call: ToolCall) -> ToolResult:
    if bool(req.path) == bool(req.url):
        raise ToolInputError("pass exactly one of path (a local file, stdio only) or url (http/https)")
    if req.path:
        if call.hosted:
            raise ToolInputError("path: a hosted server never reads its own disk; pass a public url instead")
        file, size, filename = await anyio.to_thread.run_sync(_open_local, req.path)
    else:
        url = req.url or ""
        if not url.startswith(("http://", "https://")):
            raise ToolInputError("url: must be http(s)")
        file, size = await _download(call, url)
        filename = url.split("?", 1)[0].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1][:200] or "upload"
    from ...models import UploadRequest

    with file:
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        workspace_id = await resolve_workspace(call, req.workspace_id)
        asset = await call.client.upload_asset(
            UploadRequest(workspace_id=workspace_id, filename=filename, content_type=content_type, size=size), file)
    return ToolResult({"asset_id": asset.asset_id, "status": asset.status, "url": asset.url, "type": asset.type,
                       "content_type": asset.content_type, "bytes": asset.size,
                       "next": "use url as an input of run_action / run_technique, or as a model's image_url param"})


TOOLS = [
    ToolSpec("upload_asset", "Upload a local file or URL to FLORA; returns a URL for inputs.",
             UploadAsset, upload_asset, "assets", read_only=False, idempotent=False),
]
