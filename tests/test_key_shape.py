"""A key that cannot be a FLORA key (an ellipsis pasted from an example: 'sk_live_…') is said to be one,
at start on stdio and as a 401 over HTTP: never a UnicodeEncodeError, never a 500."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx2
import pytest

from flora_mcp._ids import not_a_flora_key
from tests.helpers import hosted


def test_the_shape_check_names_the_character_and_never_the_key():
    assert not_a_flora_key("sk_live_abc123") is None
    problem = not_a_flora_key("sk_live_secretpart…")
    assert problem is not None and "not a FLORA key" in problem and "U+2026" in problem and "ellipsis" in problem
    assert "secretpart" not in problem
    assert "U+0020" in (not_a_flora_key("sk_live_a b") or "")


@pytest.mark.slow
def test_stdio_refuses_it_at_start_in_one_line():
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLORA_")}
    done = subprocess.run([sys.executable, "-m", "flora_mcp"], env=clean | {"FLORA_API_KEY": "sk_live_…"},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("flora-mcp: FLORA_API_KEY is not valid: this is not a FLORA key"), line
    assert "ellipsis" in line and "Traceback" not in done.stderr


@pytest.mark.slow
def test_http_answers_401_for_a_non_ascii_bearer():
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
               "Authorization": "Bearer sk_live_…".encode()}
    with hosted("--sandbox") as (base, proc):
        r = httpx2.post(f"{base}/mcp", json=body, headers=headers)
        assert r.status_code == 401, r.text
        assert r.json()["message"].startswith("This is not a FLORA key") and "ellipsis" in r.json()["message"]
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    assert "Traceback" not in proc.stderr() and "UnicodeEncodeError" not in proc.stderr()
