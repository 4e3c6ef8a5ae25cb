"""What an agent gets back for a run's outputs, and the outputs as MCP resources.

Every output is a row (id, type, url, mime: the same object is accepted back as an input) and a
resource link to flora://runs/{run_id}/outputs/{output_id}, which this server reads with the
user's key. What the agent can look at depends on `previews`:

- small (default): one small picture per image or video (a video shows a sheet of frames); when a
  result holds several, they arrive as one numbered contact sheet. Audio: a link with its length
  and size, never inlined.
- full: each image up to 1 MP, a larger frame sheet per video, audio inline when small.
- none: links only.

A finished run's previews are sent once per user; asking again returns links unless `previews`
is given. Downloads are spooled to a temporary file with a size cap, so a large output is never
held in memory whole; images are checked for decompression bombs before they are decoded.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import mimetypes
import re
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import anyio
from mcp_types import BlobResourceContents, ContentBlock, EmbeddedResource, ImageContent, ResourceLink

from ..errors import FloraError

if TYPE_CHECKING:
    from ..client import FloraClient
    from ..models import Run, RunOutput
    from .toolcall import ToolCall
    from .tooling import ToolResult

logger = logging.getLogger("flora_mcp.server")

PreviewMode = Literal["none", "small", "full"]
PREVIEW_MAX_PIXELS = 1_000_000  # full previews
PREVIEW_MAX_BYTES = 200_000
SMALL_EDGE = 512  # longest side of a small preview
SMALL_MAX_BYTES = 48_000
SHEET_TILE_EDGE = 256  # one output's tile in a contact sheet
SHEET_MAX_BYTES = 60_000
VIDEO_FRAMES = {"small": 4, "full": 6}
VIDEO_TILE_EDGE = {"small": 256, "full": 400}
INLINE_AUDIO_MAX_BYTES = 200_000  # previews="full" only
INLINE_TEXT_MAX_BYTES = 100_000
PREVIEW_SOURCE_MAX_BYTES = 100_000_000  # a larger image is linked, not previewed
FETCH_MAX_BYTES = 200_000_000  # a run output larger than this is not downloaded
RESOURCE_MAX_BYTES = 20_000_000  # resources/read answers inline (base64): bigger files are refused with their URL
SPOOL_IN_MEMORY = 4_000_000  # a download spills from memory to a temporary file beyond this
OUTPUT_URI = "flora://runs/{run_id}/outputs/{output_id}"
_TILE = "flora/tile"  # marks a small preview that may join a contact sheet (removed before sending)
_EXPECTED_MIME = {"imageUrl": "image/", "videoUrl": ("video/", "image/gif"), "audioUrl": "audio/", "text": "text/"}
_DEFAULT_MIME = {"imageUrl": "image/png", "videoUrl": "video/mp4", "audioUrl": "audio/mpeg", "text": "text/plain",
                 "documentUrl": "application/pdf"}


def output_uri(run_id: str, output_id: str) -> str:
    return OUTPUT_URI.format(run_id=run_id, output_id=output_id)


def guess_mime(output: RunOutput) -> str:
    path = output.url.split("?", 1)[0]
    return mimetypes.guess_type(path)[0] or _DEFAULT_MIME[output.type]


async def fetch(client: FloraClient, url: str, limit: int, *, follow_redirects: bool = True) -> tuple[bytes, str]:
    """Download up to `limit` bytes; larger files raise rather than fill memory."""
    async with client.stream_output(url, follow_redirects=follow_redirects) as response:
        mime = response.headers.get("content-type", "").split(";")[0].strip()
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise FloraError(f"Output is larger than {limit} bytes; not inlined")
            chunks.append(chunk)
        return b"".join(chunks), mime


async def save(client: FloraClient, run_id: str, output: RunOutput, directory: Path) -> tuple[Path, int, str]:
    """Stream one output to `directory/run_id/`; check its size and type. Returns path, bytes, mime.

    Every name on disk is built from sanitised parts, and a path that would resolve outside
    `directory` is refused: run and output IDs and URLs come from FLORA's answer, which we do not
    let choose where a file lands. A failed or aborted download leaves no `.part` file behind.
    """
    root = directory.expanduser().resolve()
    folder = root / _safe_name(run_id, "run")
    target_stem = _safe_name(output.output_id, "output")
    async with client.stream_output(output.url) as response:
        mime = response.headers.get("content-type", "").split(";")[0].strip() or guess_mime(output)
        expected = _EXPECTED_MIME.get(output.type)
        if expected and not mime.startswith(expected):
            raise FloraError(f"Output {output.output_id} claims {output.type} but arrived as {mime}; not saved")
        ext = mimetypes.guess_extension(mime) or Path(output.url.split("?", 1)[0]).suffix or ".bin"
        ext = "." + (re.sub(r"[^A-Za-z0-9]", "", ext)[:10] or "bin")
        target = folder / f"{target_stem}{ext}"
        if not target.resolve().is_relative_to(root):
            raise FloraError(f"Output {output.output_id} would be saved outside {root}; not saved")
        folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        size = 0
        try:
            async with await anyio.open_file(partial, "wb") as fh:
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > FETCH_MAX_BYTES:
                        raise FloraError(f"Output {output.output_id} exceeds {FETCH_MAX_BYTES} bytes; not saved")
                    await fh.write(chunk)
            declared = response.headers.get("content-length")
            if size == 0 or (declared and declared.isdigit() and int(declared) != size):
                raise FloraError(f"Output {output.output_id} arrived incomplete; not saved")
            partial.replace(target)
        finally:  # any failure, cancellation included: no half-written file stays behind
            partial.unlink(missing_ok=True)
    return target, size, mime


def _safe_name(value: str, fallback: str) -> str:
    """A file or folder name from an untrusted ID: [A-Za-z0-9_-] only, never empty, '.' or '..'."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", value)[:80].strip("_")
    return name or fallback


@asynccontextmanager
async def spooled(client: FloraClient, url: str, limit: int) -> AsyncIterator[tuple[IO[bytes], str, int]]:
    """Download into a temporary file (in memory while small), refusing more than `limit` bytes.

    Yields the file (rewound), its MIME type and size; the file is gone when the block ends.
    """
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        async with client.stream_output(url) as response:
            mime = response.headers.get("content-type", "").split(";")[0].strip()
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise FloraError(f"{_mb(int(declared))} is more than the {_mb(limit)} this server downloads")
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise FloraError(f"more than the {_mb(limit)} this server downloads")
                spool.write(chunk)
        spool.seek(0)
        yield spool, mime, size


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size >= 100_000 else f"{size / 1000:.1f} KB"


async def render_outputs(
    client: FloraClient, run: Run, *, mode: PreviewMode = "small", save_dir: Path | None = None
) -> tuple[list[dict[str, Any]], list[ContentBlock]]:
    """Rows for structured content (every output) and the content blocks a client can show."""
    from . import pictures

    rows: list[dict[str, Any]] = []
    blocks: list[ContentBlock] = []
    for output in run.outputs:
        row: dict[str, Any] = {"id": output.output_id, "type": output.type, "url": output.url, "mime": guess_mime(output)}
        shown: list[ContentBlock] = []
        try:
            if save_dir is not None:
                try:
                    path, size, mime = await save(client, run.run_id, output, save_dir)
                    row |= {"path": str(path), "bytes": size, "mime": mime}
                except OSError as exc:  # the run's answer matters more than the local copy
                    row["note"] = f"not saved to {save_dir}: {exc.strerror or type(exc).__name__}"
            if output.type == "text":
                data, _ = await fetch(client, output.url, INLINE_TEXT_MAX_BYTES)
                row["text"] = data.decode("utf-8", errors="replace")
            elif output.type == "imageUrl" and mode != "none":
                async with spooled(client, output.url, PREVIEW_SOURCE_MAX_BYTES) as (source, mime, size):
                    row |= {"mime": mime or row["mime"], "bytes": size}
                    if mode == "full":
                        picture, original = await anyio.to_thread.run_sync(lambda: pictures.image_preview(
                            source, max_pixels=PREVIEW_MAX_PIXELS, max_bytes=PREVIEW_MAX_BYTES))
                        row["preview"] = f"{picture.size[0]}x{picture.size[1]} {picture.mime}"
                    else:
                        picture, original = await anyio.to_thread.run_sync(lambda: pictures.image_preview(
                            source, max_edge=SMALL_EDGE, max_bytes=SMALL_MAX_BYTES))
                row["size"] = f"{original[0]}x{original[1]}"
                shown.append(_image_block(picture, tile=mode == "small"))
            elif output.type == "videoUrl" and mode != "none":
                async with spooled(client, output.url, FETCH_MAX_BYTES) as (source, mime, size):
                    row |= {"mime": mime or row["mime"], "bytes": size}
                    picture, info = await anyio.to_thread.run_sync(lambda: pictures.video_sheet(
                        source, frames=VIDEO_FRAMES[mode], tile_edge=VIDEO_TILE_EDGE[mode],
                        max_bytes=SMALL_MAX_BYTES if mode == "small" else PREVIEW_MAX_BYTES))
                row |= {"size": f"{info.size[0]}x{info.size[1]}", "seconds": info.seconds,
                        "preview": f"{VIDEO_FRAMES[mode]} frames, left to right"}
                shown.append(_image_block(picture, tile=mode == "small"))
            elif output.type == "audioUrl":
                limit = INLINE_AUDIO_MAX_BYTES if mode == "full" else FETCH_MAX_BYTES
                try:
                    async with spooled(client, output.url, limit) as (source, mime, size):
                        row |= {"mime": mime or row["mime"], "bytes": size}
                        row["seconds"] = await anyio.to_thread.run_sync(pictures.audio_seconds, source)
                        if mode == "full":  # opt-in. An embedded blob, not AudioContent: langchain-mcp-adapters
                            source.seek(0)  # raises NotImplementedError on AudioContent, and takes this as a file
                            shown.append(EmbeddedResource(type="resource", resource=BlobResourceContents(
                                uri=output_uri(run.run_id, output.output_id), mime_type=row["mime"],
                                blob=base64.b64encode(source.read()).decode())))
                except FloraError as exc:
                    if mode != "full":
                        raise
                    row["note"] = f"not inlined: {exc}"
        except pictures.NotPreviewable as exc:
            row["note"] = f"no preview: {exc}"
        except FloraError as exc:
            row["note"] = f"no preview: {exc}"
        except Exception as exc:  # a preview that cannot be made must not lose the run's answer
            logger.warning("preview of %s failed: %s", output.output_id, type(exc).__name__)
            row["note"] = "preview unavailable"
        row = {k: v for k, v in row.items() if v is not None}
        blocks.extend(shown)
        if not (output.type == "text" and "text" in row):  # inline text is already in the result's JSON
            blocks.append(_link(run.run_id, row))
        rows.append(row)
    return rows, blocks


def _image_block(picture: Any, *, tile: bool) -> ImageContent:
    return ImageContent(type="image", data=base64.b64encode(picture.data).decode(), mime_type=picture.mime,
                        _meta={_TILE: True} if tile else None)


def _link(run_id: str, row: dict[str, Any]) -> ResourceLink:
    """The output as a resource link. Where FLORA's URL is public the link is that URL, which a model
    provider can fetch (langchain-mcp-adapters and fast-agent hand a link's URI to the model as an image
    URL); the flora:// form, read through MCP, is then named in the description. Otherwise flora://."""
    facts = [f"{row['seconds']:g} s" if row.get("seconds") else None, row.get("size"),
             _mb(row["bytes"]) if row.get("bytes") else None, row["mime"]]
    mcp_uri = output_uri(run_id, row["id"])
    public = publicly_fetchable(row["url"])
    return ResourceLink(type="resource_link", uri=row["url"] if public else mcp_uri, name=f"{run_id}/{row['id']}",
                        description=", ".join(f for f in facts if f)
                        + (f"; through MCP: {mcp_uri}" if public else f"; also at {row['url']}"),
                        mime_type=row["mime"], size=row.get("bytes"))


def publicly_fetchable(url: str) -> bool:
    """An https URL on a public host name or address (judged from the URL alone: no DNS lookup)."""
    try:
        parsed = urlsplit(url)
        host = (parsed.hostname or "").lower()
    except ValueError:
        return False
    if parsed.scheme != "https" or "." not in host.strip("[]") and ":" not in host:
        return False
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:  # a name
        return not host.endswith((".local", ".localhost", ".internal", ".lan", ".home.arpa")) and host != "localhost"


async def present_outputs(call: ToolCall, run: Run) -> tuple[list[dict[str, Any]], list[ContentBlock], str | None]:
    """A completed run's rows and blocks for this call, plus a note when previews were left out.

    Rendered once per run and preview mode (asking again downloads nothing); previews are sent
    once per user unless the call asks for them with `previews`.
    """
    views = call.user_state.finished.get(run.run_id)
    if views is None:
        views = call.user_state.finished[run.run_id] = {}
    asked = call.previews
    shown = any(m != "none" for m in views)
    mode: PreviewMode = asked or ("none" if shown else "small")
    if mode not in views:
        # Saving is the server operator's choice (stdio users set FLORA_OUTPUT_DIR); hosted mode leaves it
        # unset. Only the first rendering saves; later ones carry its paths over.
        first = next(iter(views.values()), None)
        if first and mode == "none":  # links only: the rows and links already made will do
            views[mode] = (first[0], [b for b in first[1] if isinstance(b, ResourceLink)])
        else:
            rows, blocks = await render_outputs(call.client, run, mode=mode,
                                                save_dir=None if first else call.settings.output_dir)
            if first:
                saved = {r["id"]: r["path"] for r in first[0] if "path" in r}
                rows = [r | {"path": saved[r["id"]]} if r["id"] in saved else r for r in rows]
            views[mode] = (rows, blocks)
    rows, blocks = views[mode]
    if asked is None and shown:
        return rows, blocks, "sent earlier; pass previews='small' or 'full' to see them again"
    return rows, blocks, None


def finish_previews(result: ToolResult) -> None:
    """Several small previews in one result become one numbered contact sheet (output order)."""
    tiles = [i for i, b in enumerate(result.content) if isinstance(b, ImageContent) and (b.meta or {}).get(_TILE)]
    if not tiles:
        return
    result.content = list(result.content)  # the blocks may be a cached run's own list: leave that intact
    if len(tiles) == 1:
        block = result.content[tiles[0]]
        result.content[tiles[0]] = ImageContent(type="image", data=block.data, mime_type=block.mime_type)
        return
    from . import pictures

    sheet = pictures.contact_sheet([base64.b64decode(result.content[i].data) for i in tiles],
                                   tile_edge=SHEET_TILE_EDGE, max_bytes=SHEET_MAX_BYTES)
    first = tiles[0]
    result.content[first] = ImageContent(type="image", data=base64.b64encode(sheet.data).decode(), mime_type=sheet.mime)
    result.content = [b for i, b in enumerate(result.content) if i == first or i not in tiles]
    result.structured["previews"] = f"one contact sheet: {len(tiles)} outputs numbered 1-{len(tiles)} in the order listed"


async def read_output(client: FloraClient, run_id: str, output_id: str) -> tuple[bytes | str, str]:
    """One output's content for resources/read: text as text, files as bytes (up to RESOURCE_MAX_BYTES)."""
    run = await client.get_run(run_id)
    output = next((o for o in run.outputs if o.output_id == output_id), None)
    if output is None:
        have = ", ".join(o.output_id for o in run.outputs) or f"none yet (status {run.status})"
        raise FloraError(f"run {run_id} has no output {output_id!r}; its outputs: {have}")
    if output.type == "text":
        data, mime = await fetch(client, output.url, INLINE_TEXT_MAX_BYTES)
        return data.decode("utf-8", errors="replace"), mime or "text/plain"
    try:
        async with spooled(client, output.url, RESOURCE_MAX_BYTES) as (source, mime, _):
            return source.read(), mime or guess_mime(output)
    except FloraError as exc:
        raise FloraError(f"{output_id} is not served through MCP: {exc}. Download it from {output.url}") from None
