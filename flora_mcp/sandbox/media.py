"""Real bytes for sandbox outputs, made from the prompt: a PNG that decodes, an H.264 MP4 that plays
(encoded with PyAV, whose wheels ship FFmpeg), a WAV that plays, and plain text."""

from __future__ import annotations

import hashlib
import io
import math
import struct
import wave
from typing import Any

from .catalog import MODELS_BY_ID

_SIZES = {"1K": 1024, "2K": 2048, "4K": 4096}
_ASPECTS = {"1:1": (1, 1), "16:9": (16, 9), "9:16": (9, 16), "4:3": (4, 3), "3:4": (3, 4)}


def image_size(params: dict) -> tuple[int, int]:
    """Pixel size for an image run, from its (valid) aspect_ratio and resolution params."""
    long_side = _SIZES.get(str(params.get("resolution", "1K")), 1024)
    w, h = _ASPECTS.get(str(params.get("aspect_ratio", "1:1")), (1, 1))
    if w >= h:
        return long_side, max(1, long_side * h // w)
    return max(1, long_side * w // h), long_side


def _palette(prompt: str, seed: int) -> list[tuple[int, int, int]]:
    digest = hashlib.sha256(f"{seed}:{prompt}".encode()).digest()
    return [tuple(digest[i : i + 3]) for i in range(0, 12, 3)]  # type: ignore[misc]


def render_png(prompt: str, size: tuple[int, int], seed: int = 0) -> bytes:
    from PIL import Image, ImageDraw  # heavy: imported only when an image is made

    width, height = size
    c0, c1, c2, c3 = _palette(prompt, seed)
    # A small gradient scaled up keeps rendering fast at 4K while every pixel still depends on the prompt.
    small = Image.new("RGB", (64, 64))
    px = small.load()
    for y in range(64):
        for x in range(64):
            u, v = x / 63, y / 63
            px[x, y] = tuple(
                int(a * (1 - u) * (1 - v) + b * u * (1 - v) + c * (1 - u) * v + d * u * v)
                for a, b, c, d in zip(c0, c1, c2, c3)
            )
    image = small.resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    unit = min(width, height)
    for i, colour in enumerate((c3, c2, c1)):
        r = unit * (0.12 + 0.08 * i)
        cx = width * (0.25 + 0.25 * i)
        cy = height * (0.5 + 0.15 * math.sin(i + seed))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour, width=max(2, unit // 100))
    draw.text((unit // 40, unit // 40), prompt[:80], fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False, compress_level=1)
    return out.getvalue()


def render_mp4(prompt: str, size: tuple[int, int], seconds: float = 2.0, fps: int = 12, seed: int = 0) -> bytes:
    """A short H.264 clip: a bar crossing a background that fades between two prompt colours."""
    import av  # PyAV: only when a video is made
    from PIL import Image

    width, height = (size[0] // 2 * 2, size[1] // 2 * 2)  # yuv420p needs even sides
    c0, c1, _, _ = _palette(prompt, seed)
    frames = max(1, int(seconds * fps))
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "30"}
        for f in range(frames):
            t = f / frames
            colour = tuple(int(a * (1 - t) + b * t) for a, b in zip(c0, c1))
            image = Image.new("RGB", (width, height), colour)
            x = int(t * (width - width // 8))
            image.paste(tuple(255 - c for c in colour), (x, height // 3, x + width // 8, height // 3 + height // 4))
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def render_wav(prompt: str, seconds: float = 2.0, rate: int = 22050) -> bytes:
    """A short melody whose notes come from the prompt: 16-bit mono PCM."""
    digest = hashlib.sha256(prompt.encode()).digest()
    notes = [220.0 * 2 ** ((b % 24) / 12) for b in digest[:8]]
    total = int(seconds * rate)
    per_note = max(1, total // len(notes))
    frames = bytearray()
    for i in range(total):
        freq = notes[min(i // per_note, len(notes) - 1)]
        envelope = 1.0 - (i % per_note) / per_note
        frames += struct.pack("<h", int(12000 * envelope * math.sin(2 * math.pi * freq * i / rate)))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return out.getvalue()


def render_text(prompt: str, model_name: str) -> bytes:
    words = prompt.split()
    title = " ".join(words[:6]).strip().capitalize() or "Untitled"
    body = (
        f"{title}\n\n"
        f"A sandbox reply from {model_name}. The prompt had {len(words)} words; "
        f"its opening was: \u201c{prompt[:200]}\u201d.\n"
    )
    return body.encode()


def render_output(run: Any, name: str) -> tuple[bytes, str]:
    index = int(name.split("_")[1].split(".")[0]) if "_" in name else 1
    seed = int(run.params.get("seed", 0) or 0) + index - 1 if isinstance(run.params.get("seed", 0), int) else index
    if run.media_type == "image":
        return render_png(run.prompt, image_size(run.params), seed=seed), "image/png"
    if run.media_type == "video":
        size = (640, 360) if run.params.get("aspect_ratio", "16:9") != "9:16" else (360, 640)
        seconds = run.params.get("duration", 5)  # the video models' default length
        seconds = min(float(seconds), 10.0) if isinstance(seconds, int | float) and seconds > 0 else 5.0
        return render_mp4(run.prompt, size, seconds=seconds, seed=seed), "video/mp4"
    if run.media_type == "audio":
        return render_wav(run.prompt), "audio/wav"
    return render_text(run.prompt, MODELS_BY_ID[run.model_id]["name"]), "text/plain; charset=utf-8"
