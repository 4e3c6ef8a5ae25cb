"""OAuth sign-in on the hosted app, in-process: the whole flow, and each way to misuse it refused.

Every case drives the real ASGI app (the SDK's OAuth routes, our provider on a SQLite ledger, the
consent page, the embedded sandbox as FLORA) over httpx2's ASGI transport.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlparse

import anyio
import httpx2
import pytest
from mcp.client import Client
from mcp.client.sse import sse_client

from flora_mcp.transports.http import create_app
from flora_mcp.transports.oauth import OAuthConfigError
from tests.helpers import hosted, mcp_http, settings

DEMO_KEY = "sk_sandbox_demo"
SECRET = "test-secret-" + "x" * 32
REDIRECT = "http://127.0.0.1:9/callback"


def oauth_settings(tmp_path, public_url: str = "http://127.0.0.1:8000", **overrides):
    return settings(**{"sandbox": True, "sandbox_speed": 200, "oauth": True, "token_secret": SECRET,
                       "public_url": public_url, "state_url": f"sqlite:///{tmp_path}/ledger.sqlite3",
                       "rate_limit": 0} | overrides)


@asynccontextmanager
async def running(app, base: str = "http://127.0.0.1:8000"):
    """The app with its lifespan running, and an HTTP client on it (no network)."""
    async with app.router.lifespan_context(app), httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url=base) as http:
        yield http


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


async def register(http) -> str:
    response = await http.post("/register", json={
        "redirect_uris": [REDIRECT], "client_name": "Test Agent", "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]})
    assert response.status_code == 201, response.text
    return response.json()["client_id"]


async def consent_page(http, client_id: str, challenge: str, **extra) -> httpx2.Response:
    """/authorize, then the consent page it redirects to (with its CSRF cookie set on `http`)."""
    response = await http.get("/authorize", params={
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "code_challenge": challenge,
        "code_challenge_method": "S256", "state": "st4te"} | extra)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith("http://127.0.0.1:8000/consent?request="), location
    return await http.get(location.removeprefix("http://127.0.0.1:8000"))  # this server, wherever it listens


async def submit(http, page: httpx2.Response, key: str, action: str = "approve") -> httpx2.Response:
    fields = dict(re.findall(r'name="(request|csrf)" value="([^"]*)"', page.text))
    return await http.post("/consent", data=fields | {"api_key": key, "action": action},
                           headers={"Origin": "http://127.0.0.1:8000"})


async def code_for(http, client_id: str, challenge: str, key: str = DEMO_KEY) -> str:
    page = await consent_page(http, client_id, challenge)
    response = await submit(http, page, key)
    assert response.status_code == 303, response.text
    query = parse_qs(urlparse(response.headers["location"]).query)
    assert query["state"] == ["st4te"]
    return query["code"][0]


async def exchange(http, client_id: str, code: str, verifier: str, redirect_uri: str = REDIRECT) -> httpx2.Response:
    return await http.post("/token", data={"grant_type": "authorization_code", "code": code, "client_id": client_id,
                                           "redirect_uri": redirect_uri, "code_verifier": verifier})


async def sign_in(http) -> tuple[str, dict]:
    client_id = await register(http)
    verifier, challenge = pkce()
    response = await exchange(http, client_id, await code_for(http, client_id, challenge), verifier)
    assert response.status_code == 200, response.text
    return client_id, response.json()


async def mcp_status(http, token: str) -> httpx2.Response:
    """One MCP request (initialize) with this bearer token."""
    return await http.post("/mcp", headers={"Authorization": f"Bearer {token}",
                                            "Accept": "application/json, text/event-stream"},
                           json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                               "protocolVersion": "2025-06-18", "capabilities": {},
                               "clientInfo": {"name": "t", "version": "1"}}})


# --- the happy path and discovery ------------------------------------------------------------------------

async def test_unauthenticated_request_points_to_metadata_and_the_flow_ends_in_tool_calls(tmp_path):
    app = create_app(oauth_settings(tmp_path))
    async with running(app) as http:
        denied = await mcp_status(http, "")
        assert denied.status_code == 401
        challenge = denied.headers["www-authenticate"]
        assert 'resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource"' in challenge

        resource = (await http.get("/.well-known/oauth-protected-resource")).json()
        assert resource["resource"].rstrip("/") == "http://127.0.0.1:8000"
        issuer = resource["authorization_servers"][0].rstrip("/")
        metadata = (await http.get("/.well-known/oauth-authorization-server")).json()
        assert metadata["issuer"].rstrip("/") == issuer
        assert metadata["code_challenge_methods_supported"] == ["S256"]
        assert metadata["registration_endpoint"].endswith("/register")
        assert metadata["revocation_endpoint"].endswith("/revoke")
        assert "refresh_token" in metadata["grant_types_supported"]

        client_id = await register(http)
        verifier, challenge = pkce()
        # Clients name the resource as our metadata does (the root) or as the endpoint they were given.
        page = await consent_page(http, client_id, challenge, resource="http://127.0.0.1:8000/mcp")
        redirect = await submit(http, page, DEMO_KEY)
        code = parse_qs(urlparse(redirect.headers["location"]).query)["code"][0]
        tokens = (await exchange(http, client_id, code, verifier)).json()
        assert tokens["access_token"].startswith("fmcp_at_") and tokens["refresh_token"].startswith("fmcp_rt_")
        async with mcp_http("http://127.0.0.1:8000", tokens["access_token"], transport=httpx2.ASGITransport(app=app)) as mcp:
            result = await mcp.call_tool("list_workspaces", {})
            assert not result.is_error, result.content[0].text
            assert result.structured_content["workspaces"]


async def test_a_flora_key_as_bearer_still_works_beside_oauth(tmp_path):
    app = create_app(oauth_settings(tmp_path))
    async with running(app) as http:
        assert (await mcp_status(http, DEMO_KEY)).status_code == 200
        rejected = await mcp_status(http, "sk_live_not_a_real_key")
        assert rejected.status_code == 401
        assert "resource_metadata=" in rejected.headers["www-authenticate"]


async def test_store_holds_token_hashes_and_a_sealed_key_only(tmp_path):
    import sqlite3

    app = create_app(oauth_settings(tmp_path))
    async with running(app) as http:
        _, tokens = await sign_in(http)
    dump = "\n".join(f"{n} {v}" for n, v in sqlite3.connect(tmp_path / "ledger.sqlite3").execute(
        "SELECT name, value FROM kv"))
    assert "oauth:at:" in dump and "oauth:rt:" in dump
    for secret in (tokens["access_token"], tokens["refresh_token"], DEMO_KEY):
        assert secret not in dump


# --- misuse, each refused --------------------------------------------------------------------------------

async def test_pkce_mismatch_is_refused(tmp_path):
    async with running(create_app(oauth_settings(tmp_path))) as http:
        client_id = await register(http)
        _, challenge = pkce()
        other_verifier, _ = pkce()
        response = await exchange(http, client_id, await code_for(http, client_id, challenge), other_verifier)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"


async def test_wrong_redirect_uri_is_refused_at_authorize_and_at_token(tmp_path):
    async with running(create_app(oauth_settings(tmp_path))) as http:
        client_id = await register(http)
        verifier, challenge = pkce()
        response = await http.get("/authorize", params={
            "response_type": "code", "client_id": client_id, "redirect_uri": "https://evil.example/cb",
            "code_challenge": challenge, "code_challenge_method": "S256"})
        assert response.status_code == 400  # never redirected to an unregistered address
        assert "evil.example" not in response.headers.get("location", "")

        code = await code_for(http, client_id, challenge)
        response = await exchange(http, client_id, code, verifier, redirect_uri="http://127.0.0.1:9/other")
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"


async def test_replayed_code_is_refused_and_revokes_what_it_issued(tmp_path):
    async with running(create_app(oauth_settings(tmp_path))) as http:
        client_id = await register(http)
        verifier, challenge = pkce()
        code = await code_for(http, client_id, challenge)
        first = await exchange(http, client_id, code, verifier)
        assert first.status_code == 200
        assert (await mcp_status(http, first.json()["access_token"])).status_code == 200

        replay = await exchange(http, client_id, code, verifier)
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
        assert (await mcp_status(http, first.json()["access_token"])).status_code == 401


@pytest.mark.slow
async def test_expired_access_token_is_refused(tmp_path):
    async with running(create_app(oauth_settings(tmp_path, oauth_access_ttl=1))) as http:
        _, tokens = await sign_in(http)
        assert (await mcp_status(http, tokens["access_token"])).status_code == 200
        await anyio.sleep(2.1)
        expired = await mcp_status(http, tokens["access_token"])
        assert expired.status_code == 401
        assert 'error="invalid_token"' in expired.headers["www-authenticate"]


async def test_revoked_tokens_are_refused(tmp_path):
    async with running(create_app(oauth_settings(tmp_path))) as http:
        client_id, tokens = await sign_in(http)
        assert (await mcp_status(http, tokens["access_token"])).status_code == 200
        # mcp 2.3's RevocationRequest requires the client_secret field even for public clients: send it empty.
        revoked = await http.post("/revoke", data={"token": tokens["access_token"], "client_id": client_id,
                                                   "client_secret": ""})
        assert revoked.status_code == 200, revoked.text
        assert (await mcp_status(http, tokens["access_token"])).status_code == 401
        # Revoking one token ends the grant: its refresh token is dead too.
        refresh = await http.post("/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                                  "refresh_token": tokens["refresh_token"]})
        assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"


async def test_sign_out_everywhere_ends_every_sign_in_made_with_the_key(tmp_path):
    async with running(create_app(oauth_settings(tmp_path))) as http:
        first_client, first = await sign_in(http)
        _, second = await sign_in(http)
        page = await http.get("/signout")
        assert page.status_code == 200 and "Sign out of FLORA everywhere" in page.text
        csrf = re.search(r'name="csrf" value="([^"]*)"', page.text).group(1)
        done = await http.post("/signout", data={"csrf": csrf, "api_key": DEMO_KEY},
                               headers={"Origin": "http://127.0.0.1:8000"})
        assert done.status_code == 200 and "Signed out everywhere" in done.text
        for tokens in (first, second):
            assert (await mcp_status(http, tokens["access_token"])).status_code == 401
        refresh = await http.post("/token", data={"grant_type": "refresh_token", "client_id": first_client,
                                                  "refresh_token": first["refresh_token"]})
        assert refresh.status_code == 400
        _, after = await sign_in(http)  # signing in again works
        assert (await mcp_status(http, after["access_token"])).status_code == 200


async def test_a_new_token_secret_signs_everyone_out(tmp_path):
    async with running(create_app(oauth_settings(tmp_path))) as http:
        client_id, tokens = await sign_in(http)
    rotated_secret = oauth_settings(tmp_path, token_secret="another-secret-" + "y" * 32)
    async with running(create_app(rotated_secret)) as http:
        assert (await mcp_status(http, tokens["access_token"])).status_code == 401
        refresh = await http.post("/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                                  "refresh_token": tokens["refresh_token"]})
        assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"


async def test_token_presented_to_another_resource_is_refused(tmp_path):
    """Two servers on one ledger, with different public URLs: a token is good only where it was issued."""
    server_a = create_app(oauth_settings(tmp_path, public_url="http://127.0.0.1:8000"))
    server_b = create_app(oauth_settings(tmp_path, public_url="http://localhost:8001"))
    async with running(server_a) as http_a, running(server_b, base="http://localhost:8001") as http_b:
        _, tokens = await sign_in(http_a)
        assert (await mcp_status(http_a, tokens["access_token"])).status_code == 200
        elsewhere = await mcp_status(http_b, tokens["access_token"])
        assert elsewhere.status_code == 401
        assert 'resource_metadata="http://localhost:8001/' in elsewhere.headers["www-authenticate"]

        # A client cannot ask for a token for another resource either.
        client_id = await register(http_a)
        _, challenge = pkce()
        response = await http_a.get("/authorize", params={
            "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "code_challenge": challenge,
            "code_challenge_method": "S256", "resource": "http://localhost:8001"})
        # shown on this server's page, not redirected to the client's URL (RFC 9700: no open redirector)
        assert response.status_code == 400 and "location" not in response.headers
        assert "invalid_target" in response.text


async def test_refresh_rotates_and_reuse_of_an_old_refresh_token_ends_the_grant(tmp_path):
    async with running(create_app(oauth_settings(tmp_path))) as http:
        client_id, tokens = await sign_in(http)
        rotated = await http.post("/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                                  "refresh_token": tokens["refresh_token"]})
        assert rotated.status_code == 200, rotated.text
        fresh = rotated.json()
        assert fresh["refresh_token"] != tokens["refresh_token"]
        assert (await mcp_status(http, tokens["access_token"])).status_code == 401  # the old one is gone
        assert (await mcp_status(http, fresh["access_token"])).status_code == 200

        reuse = await http.post("/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                                "refresh_token": tokens["refresh_token"]})
        assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
        # Someone replayed a rotated-out token: the whole grant ends, the legitimate holder signs in again.
        assert (await mcp_status(http, fresh["access_token"])).status_code == 401
        again = await http.post("/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                                "refresh_token": fresh["refresh_token"]})
        assert again.status_code == 400


async def test_consent_refuses_a_rejected_key_a_missing_csrf_token_and_a_reused_request(tmp_path):
    async with running(create_app(oauth_settings(tmp_path))) as http:
        client_id = await register(http)
        _, challenge = pkce()
        page = await consent_page(http, client_id, challenge)
        assert page.status_code == 200
        assert "Test Agent" in page.text and REDIRECT in page.text

        rejected = await submit(http, page, "sk_live_wrong")
        assert rejected.status_code == 400
        assert "FLORA did not accept this API key" in rejected.text
        assert "sk_live_wrong" not in rejected.text

        fields = dict(re.findall(r'name="(request|csrf)" value="([^"]*)"', page.text))
        forged = await http.post("/consent", data=fields | {"csrf": "guess", "api_key": DEMO_KEY, "action": "approve"})
        assert forged.status_code == 403
        cross_site = await http.post("/consent", data=fields | {"api_key": DEMO_KEY, "action": "approve"},
                                     headers={"Origin": "https://evil.example"})
        assert cross_site.status_code == 403

        approved = await submit(http, page, DEMO_KEY)
        assert approved.status_code == 303
        assert (await submit(http, page, DEMO_KEY)).status_code == 410  # one request, one code


async def test_deny_returns_access_denied_to_the_client(tmp_path):
    async with running(create_app(oauth_settings(tmp_path))) as http:
        client_id = await register(http)
        _, challenge = pkce()
        response = await submit(http, await consent_page(http, client_id, challenge), "", action="deny")
        assert response.status_code == 303
        query = parse_qs(urlparse(response.headers["location"]).query)
        assert query["error"] == ["access_denied"] and query["state"] == ["st4te"]


def test_oauth_refuses_to_start_without_a_token_secret_or_public_url(tmp_path):
    with pytest.raises(OAuthConfigError, match="FLORA_TOKEN_SECRET"):
        create_app(oauth_settings(tmp_path, token_secret=None))
    with pytest.raises(OAuthConfigError, match="FLORA_PUBLIC_URL"):
        create_app(oauth_settings(tmp_path, public_url=None, host="0.0.0.0"))


@pytest.mark.slow
async def test_two_processes_on_one_postgresql_accept_each_others_codes_and_tokens(postgres_url):
    """Replicas behind one public URL: sign in on one, exchange and call on the other, refresh back."""
    env = {"FLORA_OAUTH": "true", "FLORA_TOKEN_SECRET": SECRET, "FLORA_PUBLIC_URL": "http://127.0.0.1:8000",
           "FLORA_STATE_URL": postgres_url}
    with hosted("--sandbox", **env) as (base_a, _), hosted("--sandbox", **env) as (base_b, _):
        async with httpx2.AsyncClient(base_url=base_a) as a, httpx2.AsyncClient(base_url=base_b) as b:
            client_id = await register(a)
            verifier, challenge = pkce()
            code = await code_for(a, client_id, challenge)
            tokens = (await exchange(b, client_id, code, verifier)).json()
            assert (await mcp_status(b, tokens["access_token"])).status_code == 200
            assert (await mcp_status(a, tokens["access_token"])).status_code == 200

            rotated = await a.post("/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                                   "refresh_token": tokens["refresh_token"]})
            assert rotated.status_code == 200, rotated.text
            assert (await mcp_status(b, rotated.json()["access_token"])).status_code == 200
            assert (await mcp_status(b, tokens["access_token"])).status_code == 401  # rotated out on A, seen on B

            # The same token serves the legacy SSE transport: it is bound to the server, not to /mcp.
            headers = {"Authorization": f"Bearer {rotated.json()['access_token']}"}
            async with Client(sse_client(f"{base_b}/sse", headers=headers)) as sse:
                assert not (await sse.call_tool("list_workspaces", {})).is_error


async def test_registration_authorize_and_consent_attempts_are_capped_per_address(tmp_path, monkeypatch):
    from flora_mcp.transports import oauth

    monkeypatch.setattr(oauth.guards, "REGISTRATIONS_PER_HOUR", 2)
    monkeypatch.setattr(oauth.pages, "CONSENT_ATTEMPTS_PER_MINUTE", 2)
    monkeypatch.setattr(oauth.guards, "AUTHORIZE_PER_MINUTE", 2)
    async with running(create_app(oauth_settings(tmp_path))) as http:
        client_id = await register(http)
        await register(http)
        flood = await http.post("/register", json={"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"})
        assert flood.status_code == 429 and flood.headers["retry-after"] == "3600"

        page = await consent_page(http, client_id, pkce()[1])
        for _ in range(2):
            assert (await submit(http, page, "sk_live_guess")).status_code == 400
        capped = await submit(http, page, DEMO_KEY)
        assert capped.status_code == 429 and "Too many attempts" in capped.text

        await consent_page(http, client_id, pkce()[1])  # the second /authorize in this minute
        flood = await http.get("/authorize", params={"response_type": "code", "client_id": client_id,
                                                     "redirect_uri": REDIRECT, "code_challenge": pkce()[1]})
        assert flood.status_code == 429


@pytest.mark.slow
def test_the_server_refuses_to_start_in_oauth_mode_without_a_secret_and_says_what_to_set():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("FLORA_")} | {"FLORA_OAUTH": "true"}
    done = subprocess.run([sys.executable, "-m", "flora_mcp", "--sandbox", "--transport", "http", "--port", "0"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "FLORA_TOKEN_SECRET" in done.stderr and "secrets.token_urlsafe(32)" in done.stderr
