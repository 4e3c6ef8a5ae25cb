"""Sandbox actions and techniques, done for real with Pillow and the standard library (QR: qr.py).

The sandbox lists only what it implements: a meaningful subset of FLORA's 37 action slugs, and two
saved techniques. Each processor takes the run's inputs (bytes or text) and params and returns
outputs as (output type, file extension, bytes, MIME type).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

Output = tuple[str, str, bytes, str]  # (imageUrl|text, ext, data, mime)


class ActionInputError(ValueError):
    """An input or param the action cannot use; the message names it."""


def _image(data: bytes):
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as exc:  # Pillow raises several types for bad bytes
        raise ActionInputError("input is not a readable image") from exc
    return image.convert("RGBA") if image.mode in ("RGBA", "LA", "P") else image.convert("RGB")


def _png(image) -> Output:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return ("imageUrl", "png", out.getvalue(), "image/png")


def _text(value: str) -> Output:
    return ("text", "txt", value.encode(), "text/plain; charset=utf-8")


def _colour(value: str) -> tuple[int, int, int]:
    from PIL import ImageColor

    try:
        return ImageColor.getrgb(value)[:3]
    except ValueError as exc:
        raise ActionInputError(f"color {value!r} is not a colour name or #rrggbb") from exc


def _draw_text(image, text: str, position: str, size: int, colour: tuple[int, int, int]):
    from PIL import ImageDraw, ImageFont

    image = image.copy()
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        font = ImageFont.load_default()
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left, bottom - top
    x = (image.width - w) // 2
    y = {"top": image.height // 20, "bottom": image.height - h - image.height // 20}.get(position, (image.height - h) // 2)
    draw.text((x, y), text, fill=colour, font=font)
    return image


def rotate(images: list, texts: list[str], p: dict[str, Any]) -> list[Output]:
    return [_png(images[0].rotate(-int(p["angle"]), expand=True))]


def flip(images: list, texts: list[str], p: dict[str, Any]) -> list[Output]:
    from PIL import ImageOps

    op = ImageOps.mirror if p["direction"] == "horizontal" else ImageOps.flip
    return [_png(op(images[0]))]


def blur(images: list, texts: list[str], p: dict[str, Any]) -> list[Output]:
    from PIL import ImageFilter

    return [_png(images[0].filter(ImageFilter.GaussianBlur(float(p["radius"]))))]


def tint(images: list, texts: list[str], p: dict[str, Any]) -> list[Output]:
    from PIL import Image

    base = images[0].convert("RGB")
    overlay = Image.new("RGB", base.size, _colour(p["color"]))
    return [_png(Image.blend(base, overlay, float(p["strength"])))]


def add_text(images: list, texts: list[str], p: dict[str, Any]) -> list[Output]:
    return [_png(_draw_text(images[0], str(p["text"]), p["position"], int(p["size"]), _colour(p["color"])))]


def text_image(images: list, texts: list[str], p: dict[str, Any]) -> list[Output]:
    from PIL import Image

    canvas = Image.new("RGB", (int(p["width"]), int(p["height"])), _colour(p["background"]))
    return [_png(_draw_text(canvas, texts[0], "center", int(p["size"]), _colour(p["color"])))]


def qr_code(images: list, texts: list[str], p: dict[str, Any]) -> list[Output]:
    from .qr import render

    try:
        return [_png(render(texts[0], scale=int(p["scale"])))]
    except ValueError as exc:
        raise ActionInputError(str(exc)) from exc


def duplicate(images: list, texts: list[str], p: dict[str, Any]) -> list[Output]:
    return [_png(images[0]) for _ in range(int(p["copies"]))]


def split_text(images: list, texts: list[str], p: dict[str, Any]) -> list[Output]:
    delimiter = str(p["delimiter"]).replace("\\n", "\n")
    parts = [part.strip() for part in texts[0].split(delimiter) if part.strip()]
    if not parts:
        raise ActionInputError("the text splits into nothing")
    return [_text(part) for part in parts[:20]]


def concat_text(images: list, texts: list[str], p: dict[str, Any]) -> list[Output]:
    return [_text(str(p["separator"]).replace("\\n", "\n").join(texts))]


def find_replace(images: list, texts: list[str], p: dict[str, Any]) -> list[Output]:
    if not p["find"]:
        raise ActionInputError("params.find must not be empty")
    return [_text(texts[0].replace(str(p["find"]), str(p["replace"])))]


def _slot(name: str, type_: str) -> dict[str, Any]:
    return {"name": name, "type": type_}


def _param(key: str, type_: str, default: Any, **extra: Any) -> dict[str, Any]:
    return {"key": key, "type": type_, "label": key.replace("_", " ").capitalize(), "default_value": default} | extra


# action_id -> (catalogue entry, processor)
ACTIONS: dict[str, tuple[dict[str, Any], Callable[[list, list[str], dict[str, Any]], list[Output]]]] = {}


def _action(action_id: str, name: str, description: str, inputs: list, outputs: list, params: list,
            fn: Callable[[list, list[str], dict[str, Any]], list[Output]], cost: float = 0.01) -> None:
    ACTIONS[action_id] = ({
        "action_id": action_id, "name": name, "description": description, "language": "en",
        "charged_cost": cost, "inputs": inputs, "outputs": outputs, "params": params,
    }, fn)


_IMG, _TXT = [_slot("image", "image")], [_slot("text", "text")]
_action("rotate-image", "Rotate image", "Rotate an image clockwise.", _IMG, _IMG,
        [_param("angle", "select", "90", available_values=["90", "180", "270"])], rotate)
_action("flip-image", "Flip image", "Mirror an image horizontally or vertically.", _IMG, _IMG,
        [_param("direction", "select", "horizontal", available_values=["horizontal", "vertical"])], flip)
_action("blur-image", "Blur image", "Gaussian blur.", _IMG, _IMG,
        [_param("radius", "number", 4, min=0, max=50, step=0.5)], blur)
_action("color-tint-image", "Tint image", "Blend a colour over an image.", _IMG, _IMG,
        [_param("color", "color", "#ff8800"), _param("strength", "number", 0.3, min=0, max=1, step=0.05)], tint)
_action("add-text-to-image", "Add text to image", "Write text onto an image.", _IMG, _IMG,
        [_param("text", "string", None, required=True),
         _param("position", "select", "bottom", available_values=["top", "center", "bottom"]),
         _param("size", "number", 48, min=8, max=400, step=1), _param("color", "color", "#ffffff")], add_text)
_action("generate-text-image", "Text to image card", "Render text as an image card.", _TXT, _IMG,
        [_param("width", "number", 1024, min=64, max=4096, step=1), _param("height", "number", 576, min=64, max=4096, step=1),
         _param("size", "number", 64, min=8, max=400, step=1), _param("color", "color", "#ffffff"),
         _param("background", "color", "#202040")], text_image)
_action("qr-code-generator", "QR code", "A QR code image for a text or URL (up to 106 bytes).", _TXT, _IMG,
        [_param("scale", "number", 10, min=2, max=40, step=1)], qr_code)
_action("duplicate-image", "Duplicate image", "Make copies of an image.", _IMG, _IMG,
        [_param("copies", "number", 2, min=1, max=8, step=1)], duplicate)
_action("split-text", "Split text", "Split text into parts.", _TXT, _TXT,
        [_param("delimiter", "string", "\\n")], split_text)
_action("concat-text", "Concatenate text", "Join several texts into one.", [_slot("texts", "text")], _TXT,
        [_param("separator", "string", " ")], concat_text)
_action("find-and-replace-text", "Find and replace", "Replace every occurrence in a text.", _TXT, _TXT,
        [_param("find", "string", None, required=True), _param("replace", "string", "")], find_replace)


def run_action(action_id: str, images: list[bytes], texts: list[str], params: dict[str, Any]) -> list[Output]:
    """Apply an action like FLORA would: unknown params are ignored, missing ones take defaults."""
    entry, fn = ACTIONS[action_id]
    merged = {p["key"]: params.get(p["key"], p["default_value"]) for p in entry["params"]}
    missing = [key for key, value in merged.items() if value is None]
    if missing:
        raise ActionInputError(f"params.{missing[0]}: required")
    wanted = {slot["type"] for slot in entry["inputs"]}
    if "image" in wanted and not images:
        raise ActionInputError("this action needs an image input")
    if "text" in wanted and not texts:
        raise ActionInputError("this action needs a text input")
    return fn([_image(b) for b in images], texts, merged)


# --- techniques ------------------------------------------------------------------------------------
def product_on_backdrop(inputs: dict[str, Any], images: dict[str, bytes]) -> list[Output]:
    from PIL import Image, ImageDraw, ImageFilter

    product = _image(images["product"]).convert("RGBA")
    canvas = Image.new("RGB", (1024, 1024), (236, 232, 226))
    draw = ImageDraw.Draw(canvas)
    for i in range(0, 1024, 8):  # soft studio gradient
        shade = 236 - i // 16
        draw.rectangle((0, i, 1024, i + 8), fill=(shade, shade - 4, shade - 10))
    product.thumbnail((640, 640))
    shadow = Image.new("RGBA", (product.width, 40), (0, 0, 0, 90)).filter(ImageFilter.GaussianBlur(12))
    x, y = (1024 - product.width) // 2, (1024 - product.height) // 2
    canvas.paste(shadow, (x, y + product.height - 10), shadow)
    canvas.paste(product, (x, y), product)
    mood = str(inputs.get("mood") or "")
    image = _draw_text(canvas, mood, "bottom", 36, (60, 50, 40)) if mood else canvas
    return [_png(image)]


def headline_poster(inputs: dict[str, Any], images: dict[str, bytes]) -> list[Output]:
    from PIL import Image

    accent = _colour(str(inputs.get("accent") or "#e4572e"))
    canvas = Image.new("RGB", (768, 1024), (250, 248, 240))
    canvas.paste(accent, (0, 0, 768, 180))
    return [_png(_draw_text(canvas, str(inputs["headline"]), "center", 72, (20, 20, 20)))]


TECHNIQUES: dict[str, tuple[dict[str, Any], Callable[[dict[str, Any], dict[str, bytes]], list[Output]]]] = {
    "tech_product_backdrop": ({
        "technique_id": "tech_product_backdrop", "name": "Product on studio backdrop",
        "description": "Places a product image on a soft studio backdrop with a caption.",
        "inputs": [{"name": "product", "type": "image", "required": True, "description": "URL of the product image"},
                   {"name": "mood", "type": "text", "required": False, "description": "Caption"}],
        "estimated_seconds": 6, "run_cost": 0.05,
    }, product_on_backdrop),
    "tech_headline_poster": ({
        "technique_id": "tech_headline_poster", "name": "Headline poster",
        "description": "A typographic poster from a headline.",
        "inputs": [{"name": "headline", "type": "text", "required": True},
                   {"name": "accent", "type": "text", "required": False, "description": "Accent colour"}],
        "estimated_seconds": 4, "run_cost": 0.05,
    }, headline_poster),
}
TECHNIQUE_COST = 0.05  # each technique's run_cost above
ACTION_SECONDS = 2
