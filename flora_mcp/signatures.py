"""FLORA's webhook signature: `Flora-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`
with the workspace's whsec_ secret, checked against the raw body bytes within 300 s of now."""

from __future__ import annotations

import hashlib
import hmac

TOLERANCE_SECONDS = 300


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The Flora-Signature header FLORA sends for `body` at `timestamp` (the sandbox signs with it too)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def check_signature(secret: str, header: str | None, body: bytes, now: float,
                    tolerance: float = TOLERANCE_SECONDS) -> str | None:
    """None when `header` signs `body` within the tolerance; else why not (for the log, not the sender)."""
    if not header:
        return "no Flora-Signature"
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        parts.setdefault(name, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        return "no timestamp in Flora-Signature"
    if abs(now - timestamp) > tolerance:
        return f"signed {int(now - timestamp)} s ago (a replay?)"
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, v) for v in parts.get("v1", [])):
        return "signature does not match"
    return None
