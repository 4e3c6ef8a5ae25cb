"""Pictures an agent can look at, made from output files without holding a decoded file whole.

Image previews, frame sheets of a video, and contact sheets of several previews. Every function
here is synchronous and CPU-bound: call it in a worker thread. Sources are seekable files (the
caller spools downloads to a temporary file), so a large output is read, not loaded.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from typing import BinaryIO

# An image with more pixels than this is not decoded at all: a small file can declare a huge
# canvas (a decompression bomb). 8K video frames and 16K x 5K panoramas are well inside it.
SOURCE_MAX_PIXELS = 80_000_000


class NotPreviewable(Exception):
    """The file cannot be shown; the message says why in a few words."""


@dataclass(frozen=True)
class Picture:
    data: bytes
    mime: str
    size: tuple[int, int]


def fit(size: tuple[int, int], *, max_edge: int | None = None, max_pixels: int | None = None) -> tuple[int, int]:
    """`size` scaled down (never up) to fit the longest-edge and pixel-count limits."""
    w, h = size
    scale = 1.0
    if max_edge:
        scale = min(scale, max_edge / max(w, h))
    if max_pixels:
        scale = min(scale, (max_pixels / (w * h)) ** 0.5)
    return max(1, int(w * scale)), max(1, int(h * scale))


def encode(image, max_bytes: int) -> Picture:
    """JPEG (PNG when there is transparency), shrunk until it is at most `max_bytes`."""
    from PIL import Image

    original = image.size
    scale = 1.0
    while True:
        size = (max(1, int(original[0] * scale)), max(1, int(original[1] * scale)))
        frame = image.resize(size, Image.Resampling.LANCZOS) if size != original else image
        out = io.BytesIO()
        if frame.mode == "RGBA":
            frame.save(out, format="PNG", optimize=True)
            mime = "image/png"
        else:
            frame.save(out, format="JPEG", quality=80, optimize=True)
            mime = "image/jpeg"
        if out.tell() <= max_bytes or scale < 0.05:
            return Picture(out.getvalue(), mime, size)
        scale *= 0.75


def image_preview(source: BinaryIO, *, max_edge: int | None = None, max_pixels: int | None = None,
                  max_bytes: int) -> tuple[Picture, tuple[int, int]]:
    """A preview of the image in `source`, and the image's own size."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            src = Image.open(source)  # reads the header only
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise NotPreviewable("image too large to decode") from None
        except Exception:  # Pillow raises many types for bytes it cannot read
            raise NotPreviewable("not a readable image") from None
    with src:
        original = src.size
        if original[0] * original[1] > SOURCE_MAX_PIXELS:
            raise NotPreviewable(f"{original[0]}x{original[1]} is too large to decode")
        target = fit(original, max_edge=max_edge, max_pixels=max_pixels)
        src.draft("RGB", target)  # JPEG decodes at a reduced scale: less memory and time
        has_alpha = src.mode in ("RGBA", "LA") or (src.mode == "P" and "transparency" in src.info)
        image = src.convert("RGBA" if has_alpha else "RGB")
    if image.size != target:
        image = image.resize(target, Image.Resampling.LANCZOS)
    return encode(image, max_bytes), original


@dataclass(frozen=True)
class VideoInfo:
    seconds: float | None
    size: tuple[int, int]


def video_sheet(source: BinaryIO, *, frames: int, tile_edge: int, max_bytes: int) -> tuple[Picture, VideoInfo]:
    """`frames` frames spread over the video, tiled left to right, top to bottom, in one picture."""
    import av  # PyAV (FFmpeg in its wheel): only when a video is shown

    try:
        container = av.open(source, mode="r")
    except Exception:  # FFmpeg's errors for unreadable input come in many types
        raise NotPreviewable("not a readable video") from None
    with container:
        if not container.streams.video:
            raise NotPreviewable("no video stream")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > SOURCE_MAX_PIXELS:
            raise NotPreviewable(f"{width}x{height} frames are too large to decode")
        seconds = _seconds(container, stream)
        tile = fit((width, height), max_edge=tile_edge)
        images = _frames_at(container, stream, seconds, frames, tile)
    if not images:
        raise NotPreviewable("no decodable frames")
    return encode(tile_images(images, numbered=False), max_bytes), VideoInfo(seconds, (width, height))


def _seconds(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return round(float(stream.duration * stream.time_base), 2)
    if container.duration is not None:
        return round(container.duration / 1_000_000, 2)
    return None


def _frames_at(container, stream, seconds: float | None, count: int, tile: tuple[int, int]) -> list:
    """Frames near evenly spaced times; without a known duration, the first `count` frames."""
    max_decoded = 600  # per target: bounds the work for a video with rare keyframes
    picked = []
    if not seconds or stream.time_base is None:
        for frame in container.decode(stream):
            picked.append(frame.reformat(width=tile[0], height=tile[1], format="rgb24").to_image())
            if len(picked) == count:
                break
        return picked
    for i in range(count):
        target = seconds * (i + 0.5) / count
        container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
        chosen = None
        for decoded, frame in enumerate(container.decode(stream)):
            chosen = frame
            if (frame.time is not None and frame.time >= target) or decoded >= max_decoded:
                break
        if chosen is not None:
            picked.append(chosen.reformat(width=tile[0], height=tile[1], format="rgb24").to_image())
    return picked


def tile_images(images: list, *, numbered: bool, columns: int | None = None):
    """One image: the given ones in a grid (each centred in its cell), optionally numbered from 1."""
    from PIL import Image, ImageDraw

    columns = columns or min(len(images), max(1, math.ceil(math.sqrt(len(images)))))
    rows = math.ceil(len(images) / columns)
    cell_w = max(im.width for im in images)
    cell_h = max(im.height for im in images)
    gap = 4 if len(images) > 1 else 0
    sheet = Image.new("RGB", (columns * cell_w + (columns - 1) * gap, rows * cell_h + (rows - 1) * gap), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for index, image in enumerate(images):
        x = (index % columns) * (cell_w + gap) + (cell_w - image.width) // 2
        y = (index // columns) * (cell_h + gap) + (cell_h - image.height) // 2
        sheet.paste(image.convert("RGB"), (x, y))
        if numbered:
            draw.rectangle((x, y, x + 22, y + 16), fill=(0, 0, 0))
            draw.text((x + 4, y + 2), str(index + 1), fill=(255, 255, 255))
    return sheet


def contact_sheet(pictures: list[bytes], *, tile_edge: int, max_bytes: int) -> Picture:
    """Several encoded previews in one numbered grid (numbers follow the list's order)."""
    from PIL import Image

    tiles = []
    for data in pictures:
        with Image.open(io.BytesIO(data)) as image:  # our own small previews: no bomb to fear
            image.draft("RGB", fit(image.size, max_edge=tile_edge))
            tiles.append(image.convert("RGB").resize(fit(image.size, max_edge=tile_edge), Image.Resampling.LANCZOS))
    return encode(tile_images(tiles, numbered=True), max_bytes)


def audio_seconds(source: BinaryIO) -> float | None:
    """The length of the audio in `source`, from its container's header."""
    import av

    try:
        with av.open(source, mode="r") as container:
            if not container.streams.audio:
                return None
            return _seconds(container, container.streams.audio[0])
    except Exception:  # no readable header: the link goes out without a length
        return None
