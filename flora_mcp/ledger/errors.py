"""The one error a ledger store raises: it cannot be used right now, said so an agent or operator can act."""

from __future__ import annotations

from ..errors import FloraError


class LedgerUnavailable(FloraError):
    """The ledger cannot record or read paid starts (locked, unreachable, deleted, read-only, full, corrupt).
    Before a paid POST this refuses the start (nothing is sent); after one, the answer still carries the run."""

    code = "ledger_unavailable"
