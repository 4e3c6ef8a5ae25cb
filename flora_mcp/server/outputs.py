"""What an agent gets back for a run's outputs.

Images: a small preview the agent can look at (≤ 1 MP and ≤ PREVIEW_MAX_BYTES) plus a link to the
full-size file. Audio: a link, and the sound inline when small. Video and documents: links. Text:
inline. Full-size media is never inlined. Optional saving streams files to disk.
"""

from __future__ import annotations

import base64
import io
import logging
import mimetypes
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from mcp_types import AudioContent, ContentBlock, ImageContent, ResourceLink

from ..errors import FloraError

if TYPE_CHECKING:
    from ..client import FloraClient
    from ..models import Run, RunOutput

logger = logging.getLogger("flora_mcp.server")

PREVIEW_MAX_PIXELS = 1_000_000
PREVIEW_MAX_BYTES = 200_000
INLINE_AUDIO_MAX_BYTES = 200_000
INLINE_TEXT_MAX_BYTES = 100_000
FETCH_MAX_BYTES = 200_000_000  # a run output larger than this is not downloaded
_EXPECTED_MIME = {"imageUrl": "image/", "videoUrl": ("video/", "image/gif"), "audioUrl": "audio/", "text": "text/"}
_DEFAULT_MIME = {"imageUrl": "image/png", "videoUrl": "video/mp4", "audioUrl": "audio/mpeg", "text": "text/plain",
                 "documentUrl": "application/pdf"}


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


def make_preview(data: bytes) -> tuple[bytes, str, tuple[int, int]]:
    """A preview ≤ PREVIEW_MAX_PIXELS and ≤ PREVIEW_MAX_BYTES: JPEG, or PNG when there is transparency."""
    from PIL import Image  # heavy: only when a preview is made

    with Image.open(io.BytesIO(data)) as src:
        src.load()
        has_alpha = src.mode in ("RGBA", "LA") or (src.mode == "P" and "transparency" in src.info)
        image = src.convert("RGBA" if has_alpha else "RGB")
    original = image.size
    scale = min(1.0, (PREVIEW_MAX_PIXELS / (original[0] * original[1])) ** 0.5)
    while True:
        size = (max(1, int(original[0] * scale)), max(1, int(original[1] * scale)))
        frame = image.resize(size, Image.Resampling.LANCZOS) if size != original else image
        out = io.BytesIO()
        if frame.mode == "RGBA":
            frame.save(out, format="PNG", optimize=True)
            mime = "image/png"
        else:
            frame.save(out, format="JPEG", quality=82, optimize=True)
            mime = "image/jpeg"
        if out.tell() <= PREVIEW_MAX_BYTES or scale < 0.05:
            return out.getvalue(), mime, size
        scale *= 0.75


async def render_outputs(
    client: FloraClient, run: Run, *, preview: bool = True, save_dir: Path | None = None
) -> tuple[list[dict[str, Any]], list[ContentBlock]]:
    """Rows for structured content (every output) and the content blocks a client can show."""
    rows: list[dict[str, Any]] = []
    blocks: list[ContentBlock] = []
    for output in run.outputs:
        row: dict[str, Any] = {"id": output.output_id, "type": output.type, "url": output.url, "mime": guess_mime(output)}
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
            elif output.type == "imageUrl" and preview:
                data, mime = await fetch(client, output.url, FETCH_MAX_BYTES)
                row["mime"] = mime or row["mime"]
                row.setdefault("bytes", len(data))
                small, small_mime, size = await anyio.to_thread.run_sync(make_preview, data)
                blocks.append(ImageContent(type="image", data=base64.b64encode(small).decode(), mime_type=small_mime))
                row["preview"] = f"{size[0]}x{size[1]} {small_mime}"
            elif output.type == "audioUrl" and preview:
                data, mime = await fetch(client, output.url, INLINE_AUDIO_MAX_BYTES)
                row["mime"] = mime or row["mime"]
                blocks.append(AudioContent(type="audio", data=base64.b64encode(data).decode(), mime_type=row["mime"]))
        except FloraError as exc:
            row["note"] = str(exc)
        except Exception as exc:  # a preview that cannot be made must not lose the run's answer
            logger.warning("preview of %s failed: %s", output.output_id, type(exc).__name__)
            row["note"] = "preview unavailable"
        if not (output.type == "text" and "text" in row):  # inline text is already in the result's JSON
            blocks.append(ResourceLink(type="resource_link", uri=output.url, name=f"{run.run_id}/{output.output_id}",
                                       mime_type=row["mime"], size=row.get("bytes")))
        rows.append(row)
    return rows, blocks
