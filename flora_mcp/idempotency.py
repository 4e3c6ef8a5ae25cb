"""FLORA's idempotency, in one place: where its two sources disagree, what we assume and why.

The OpenAPI spec (CONTRACT.md): an `Idempotency-Key` header; a key reused within two hours answers
`409 idempotency_duplicate` with no run ID. FLORA's platform docs (conventions): the same key with the
same body replays the original answer (the run ID included, header `idempotent-replayed: true`) for
24 hours, and a different body gets `422 idempotency_conflict`; technique runs take an
`idempotency_key` body field.

So the client:
- sends the header on every POST (the body field is left out: the /runs/technique schema we send
  has additionalProperties: false and no such field);
- reuses one key for every retry of one logical start (a retry never starts a second run);
- reads a replay as the start's answer (it carries the run ID), and a 409 for a key that may have
  reached FLORA before as "accepted and charged once, run ID not returned" (AcceptedRunLostError);
- sends bodies as canonical JSON (sorted keys): a resend is byte-for-byte the first request;
- never advises dropping a key whose start's outcome is unknown: sending the same key again is what
  makes a second charge impossible — within KEY_SAFE_SECONDS (two hours, the shorter window). After
  that FLORA may have forgotten the key, so the ledger stops resending it and says so instead.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import FloraError

IDEMPOTENCY_HEADER = "Idempotency-Key"
SPENT_KEY_CODES = ("idempotency_duplicate",)  # spec: the key was used; the first attempt was accepted
CONFLICT_CODES = ("idempotency_conflict",)  # docs: the key was used for a different body


KEY_SAFE_SECONDS = 2 * 3600  # the shorter documented window: after it, FLORA may have forgotten a key


def key_was_spent(error: FloraError, *, resent: bool) -> bool:
    """Does this refusal mean "FLORA already accepted a start with this key"? A 409 says so whenever the
    key was ours to have sent before (a retry, a resend, or a key the agent chose and may have used);
    a 422 conflict says so for a resend, whose normalised body the ledger matched to the first one."""
    return resent and error.code in SPENT_KEY_CODES + CONFLICT_CODES


def canonical_json(body: dict[str, Any]) -> bytes:
    """The bytes of a request body: sorted keys, so the same normalised request is the same body
    (FLORA's docs compare a replayed key's body with the first one's)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
