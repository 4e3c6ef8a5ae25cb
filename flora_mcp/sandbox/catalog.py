"""The sandbox's seeded model catalogue, shaped like FLORA's GET /models."""

from __future__ import annotations

from typing import Any

# What one FLORA credit costs in the sandbox's books (USD).
USD_PER_CREDIT = 0.01

_ASPECT = {
    "name": "aspect_ratio",
    "type": "string",
    "required": False,
    "default": "1:1",
    "label": "Aspect ratio",
    "options": [
        {"label": "Square", "value": "1:1"},
        {"label": "Landscape", "value": "16:9"},
        {"label": "Portrait", "value": "9:16"},
        {"label": "Classic", "value": "4:3"},
        {"label": "Classic portrait", "value": "3:4"},
    ],
}
_RESOLUTION = {
    "name": "resolution",
    "type": "string",
    "required": False,
    "default": "1K",
    "label": "Resolution",
    "options": [
        {"label": "1K", "value": "1K", "description": "about 1 megapixel"},
        {"label": "2K", "value": "2K", "description": "about 4 megapixels"},
        {"label": "4K", "value": "4K", "description": "about 16 megapixels"},
    ],
}
_SEED = {"name": "seed", "type": "seed", "required": False, "label": "Seed", "min": 0, "max": 2147483647}
_NUM_IMAGES = {"name": "num_images", "type": "int", "required": False, "default": 1, "min": 1, "max": 4}
_GUIDANCE = {"name": "guidance", "type": "float", "required": False, "default": 3.5, "min": 1, "max": 10}
_IMAGE_URL = {
    "name": "image_url",
    "type": "string",
    "required": True,
    "label": "Reference image",
    "description": "URL of the image to start from",
}
_DURATION = {"name": "duration", "type": "int", "required": False, "default": 5, "min": 2, "max": 10}
_VIDEO_ASPECT = {**_ASPECT, "default": "16:9", "options": _ASPECT["options"][:3]}


def _model(
    model_id: str,
    name: str,
    type_: str,
    provider: str,
    credits: int,
    seconds: int,
    params: list[dict[str, Any]],
    capabilities: list[str],
    beta: bool = False,
) -> dict[str, Any]:
    return {
        "model_id": model_id,
        "name": name,
        "type": type_,
        "provider": provider,
        "capabilities": capabilities,
        "estimated_credits": credits,
        "estimated_seconds": seconds,
        "params": params,
        "beta": beta,
    }


MODELS: list[dict[str, Any]] = [
    _model("t2i-flux-2-pro", "FLUX.2 Pro", "image", "Black Forest Labs", 6, 8,
           [_ASPECT, _RESOLUTION, _SEED, _NUM_IMAGES, _GUIDANCE], ["text-to-image"]),
    _model("t2i-flux-2-schnell", "FLUX.2 Schnell", "image", "Black Forest Labs", 2, 3,
           [_ASPECT, _SEED, _NUM_IMAGES], ["text-to-image"]),
    _model("t2i-imagen-4", "Imagen 4", "image", "Google", 8, 10,
           [_ASPECT, _RESOLUTION, _SEED], ["text-to-image"]),
    _model("i2i-flux-kontext-pro", "FLUX.1 Kontext Pro", "image", "Black Forest Labs", 8, 10,
           [_IMAGE_URL, _ASPECT, _SEED], ["image-to-image", "editing"]),
    _model("t2v-veo-3", "Veo 3", "video", "Google", 400, 120,
           [_VIDEO_ASPECT, _DURATION, _SEED], ["text-to-video", "audio"]),
    _model("i2v-kling-2-1", "Kling 2.1", "video", "Kuaishou", 150, 90,
           [_IMAGE_URL, _DURATION, _SEED], ["image-to-video"]),
    _model("t2v-seedance-1-lite", "Seedance 1 Lite", "video", "ByteDance", 60, 45,
           [_VIDEO_ASPECT, _DURATION, _SEED], ["text-to-video"], beta=True),
    _model("tts-elevenlabs-v3", "Eleven v3", "audio", "ElevenLabs", 5, 6,
           [{"name": "voice", "type": "string", "required": False, "default": "aria",
             "options": [{"label": "Aria", "value": "aria", "description": "Warm, expressive female narrator"},
                         {"label": "Roger", "value": "roger", "description": "Calm, confident male voice"},
                         {"label": "Sarah", "value": "sarah", "description": "Soft, young female voice"}]}],
           ["text-to-speech"]),
    _model("t2a-stable-audio-2", "Stable Audio 2", "audio", "Stability AI", 10, 15,
           [{**_DURATION, "default": 8, "min": 1, "max": 47}, _SEED], ["text-to-music", "sound-effects"]),
    _model("llm-claude-sonnet-4-5", "Claude Sonnet 4.5", "text", "Anthropic", 1, 3,
           [{"name": "max_tokens", "type": "int", "required": False, "default": 1024, "min": 1, "max": 8192},
            {"name": "temperature", "type": "float", "required": False, "default": 1.0, "min": 0, "max": 1}],
           ["text-generation"]),
    _model("llm-gpt-5-mini", "GPT-5 mini", "text", "OpenAI", 1, 2,
           [{"name": "max_tokens", "type": "int", "required": False, "default": 1024, "min": 1, "max": 16384}],
           ["text-generation"]),
]

MODELS_BY_ID = {m["model_id"]: m for m in MODELS}

# The model FLORA picks when a request names none (per type).
DEFAULT_MODEL = {
    "image": "t2i-flux-2-pro",
    "video": "t2v-seedance-1-lite",
    "audio": "tts-elevenlabs-v3",
    "text": "llm-claude-sonnet-4-5",
}
