"""The contract's ID patterns and enums, and our idempotency keys: cheap to import, no pydantic.

Kept apart from models.py so the stdio server can publish its tool schemas at start-up without
building the API's ~35 response models (they load on the first tool call).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Literal

# IDs end up in URL paths and file names, so they take only letters, digits, '_' and '-': never '/',
# '..', '?' or whitespace, whether an agent or a (compromised) FLORA answer supplies them.
_ID_BODY = r"[A-Za-z0-9_-]{1,64}"
ID_PATTERN = rf"^[a-z]{{1,10}}_{_ID_BODY}$"  # any FLORA ID: a short prefix, '_', the body
WORKSPACE_ID_PATTERN = rf"^ws_{_ID_BODY}$"
PROJECT_ID_PATTERN = rf"^prj_{_ID_BODY}$"
RUN_ID_PATTERN = rf"^run_{_ID_BODY}$"
TECHNIQUE_ID_PATTERN = rf"^tech_{_ID_BODY}$"
ASSET_ID_PATTERN = rf"^asset_{_ID_BODY}$"

GenerationType = Literal["image", "video", "audio", "text"]
GENERATION_TYPES: tuple[str, ...] = ("image", "video", "audio", "text")


def new_idempotency_key() -> str:
    """One key per logical start; the client reuses it on every retry of that start."""
    return f"flora-mcp-{uuid.uuid4().hex}"


def not_a_flora_key(api_key: str) -> str | None:
    """Why `api_key` cannot be a FLORA key, or None. FLORA keys are printable ASCII with no spaces; an
    ellipsis copied from documentation ('sk_live_…') would otherwise fail deep inside the HTTP client."""
    odd = next((c for c in api_key if not 33 <= ord(c) <= 126), None)
    if odd is None:
        return None
    what = f"{odd!r} (U+{ord(odd):04X})" if odd.isprintable() and not odd.isspace() else f"U+{ord(odd):04X}"
    return (f"this is not a FLORA key: it contains {what}, which no FLORA key has"
            + (" (an ellipsis copied from an example?)" if odd == "\u2026" else "")
            + "; paste the whole key from FLORA's settings")


def key_hash(api_key: str | None) -> str:
    """An API key's name wherever keys must be told apart without being kept (connection slots, the
    shared store): its full SHA-256, since a shortened hash could be forged to collide. Logs show a prefix."""
    return hashlib.sha256((api_key or "").encode()).hexdigest()


def user_id(base_url: str, api_key: str | None) -> str:
    """Who the ledger's rows belong to: a hash, never the key. The same key on another FLORA is another user."""
    return hashlib.sha256(f"{base_url}\n{api_key or ''}".encode()).hexdigest()[:32]
