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
- treats a key as spent for 24 hours (the longer window), and never advises dropping a key whose
  start's outcome is unknown: sending the same key again is what makes a second charge impossible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .errors import FloraError

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "idempotent-replayed"
KEY_LIFETIME_HOURS = 24  # the longer of the two documented windows
SPENT_KEY_CODES = ("idempotency_duplicate",)  # spec: the key was used; the first attempt was accepted
CONFLICT_CODES = ("idempotency_conflict",)  # docs: the key was used for a different body


def key_was_spent(error: FloraError) -> bool:
    return error.code in SPENT_KEY_CODES
