"""Writes tests/data/ledger-v0.sqlite3 with the ledger of the release before schema versions (main at
c1224f4: one JSON document per run in `runs(user, key, created, data)`, a global `calibration`, `kv`).

    git archive c1224f4 flora_mcp | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old python tests/data/make_legacy_ledger.py "$PWD/tests/data/ledger-v0.sqlite3"  # absolute

Rows are dated relative to 2026-12-05 00:00 UTC; tests move their clock there.
"""

import sys
import time

import anyio

from flora_mcp.ledger import Intent, open_ledger, request_fingerprint

NOW = 1_796_428_800.0  # 2026-12-05T00:00:00Z


def intent(key: str, prompt: str, usd: float, **details) -> Intent:
    body = {"prompt": prompt}
    return Intent(key=key, key_given=True, tool="start_generation",
                  fingerprint=request_fingerprint("start_generation", body), reserve_usd=usd, estimated_usd=usd,
                  details={"kind": "generation", "label": prompt[:40], "calibration": 1.0} | details)


async def main(path: str) -> None:
    ledger = open_ledger(f"sqlite:///{path}")
    real_time = time.time
    for user, offset in (("alice", 0), ("bob", 1)):
        for n in range(6):
            created = NOW - 3600 * (n + 1) - offset
            time.time = lambda c=created: c  # the old code stamps rows with time.time()
            key = f"{user}-k{n}"
            await ledger.begin(user, [intent(key, f"{user} prompt {n}", 0.1, model="t2i-flux-2-pro",
                                             project_id=f"prj_{user}")], budget_usd=None, window_seconds=86400)
            if n == 5:
                continue  # left starting (its process died)
            if n == 4:
                await ledger.outcome_unknown(user, key, "connection dropped")
                continue
            await ledger.started(user, key, f"run_{user}_{n}", estimated_seconds=8)
            if n < 3:
                await ledger.observe(user, f"run_{user}_{n}", "completed", 0.08)
    time.time = real_time
    await ledger.store.put("oauth:client:c1", '{"client_id":"c1"}', 10 * 365 * 86400)
    await ledger.aclose()


anyio.run(main, sys.argv[1])
