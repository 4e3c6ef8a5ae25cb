"""The consent page in a real headless browser (Debian's Chromium driven by Playwright), as a user sees it:
a rejected key shows a clear message on the page, the right key returns the browser to the client
with a code. With UPDATE_SCREENSHOTS=1 it refreshes the screenshots the README shows (docs/consent-page*.png)."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlencode, urlparse

import httpx2
import pytest

from tests.helpers import hosted

DOCS = Path(__file__).resolve().parent.parent / "docs"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None

pytestmark = [
    pytest.mark.slow,  # Chromium driving flora-mcp in a process
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed (pip install -e .[test])"),
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install -y chromium; "
                                                ".ci/run installs it)"),
]


class _Callback(BaseHTTPRequestHandler):
    """The OAuth client's redirect URI: remembers the query it was called with."""

    received: ClassVar[list[dict]] = []

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/callback":  # not the browser's /favicon.ico
            _Callback.received.append(parse_qs(url.query))
        body = b"<!doctype html><title>Signed in</title><p>You can close this window.</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_consent_page_in_chromium_rejects_a_wrong_key_then_signs_in(tmp_path):
    shots = DOCS if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    callback = HTTPServer(("127.0.0.1", 0), _Callback)
    threading.Thread(target=callback.serve_forever, daemon=True).start()
    redirect_uri = f"http://127.0.0.1:{callback.server_port}/callback"
    _Callback.received = []
    env = {"FLORA_OAUTH": "true", "FLORA_TOKEN_SECRET": secrets.token_urlsafe(32)}
    try:
        with hosted("--sandbox", **env) as (base, _):
            client_id = httpx2.post(f"{base}/register", json={
                "redirect_uris": [redirect_uri], "client_name": "Claude", "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"]}).json()["client_id"]
            verifier = secrets.token_urlsafe(48)
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
            authorize = f"{base}/authorize?" + urlencode({
                "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
                "code_challenge": challenge, "code_challenge_method": "S256", "state": "browser-state"})

            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
                page = browser.new_page(viewport={"width": 720, "height": 760})
                page.goto(authorize)
                expect(page).to_have_url(f"{base}/consent?request=" + page.url.split("request=")[1])
                expect(page.get_by_role("heading", level=1)).to_have_text("Connect Claude to FLORA")
                expect(page.locator(".who")).to_contain_text(redirect_uri)
                key_field = page.get_by_label("Your FLORA API key")  # a real <label for>, reachable by name
                expect(key_field).to_be_focused()
                expect(key_field).to_have_attribute("type", "password")
                page.screenshot(path=str(shots / "consent-page.png"))

                key_field.fill("sk_live_not_a_key_anyone_has")
                page.get_by_role("button", name="Allow").click()
                alert = page.get_by_role("alert")
                expect(alert).to_contain_text("FLORA did not accept this API key")
                expect(page.get_by_label("Your FLORA API key")).to_have_attribute("aria-invalid", "true")
                assert "sk_live_not_a_key_anyone_has" not in page.content()  # the key is not echoed back
                assert "sk_live" not in page.url
                page.screenshot(path=str(shots / "consent-page-rejected.png"))
                assert _Callback.received == []  # nothing issued for a rejected key

                page.get_by_label("Your FLORA API key").fill("sk_sandbox_demo")
                page.get_by_role("button", name="Allow").click()
                page.wait_for_url(f"{redirect_uri}?**")
                assert "sk_sandbox" not in page.url
                browser.close()

            (query,) = _Callback.received
            assert query["state"] == ["browser-state"]
            token = httpx2.post(f"{base}/token", data={
                "grant_type": "authorization_code", "code": query["code"][0], "client_id": client_id,
                "redirect_uri": redirect_uri, "code_verifier": verifier})
            assert token.status_code == 200, token.text
            assert token.json()["access_token"].startswith("fmcp_at_")
    finally:
        callback.shutdown()
