"""Sign-in for the hosted endpoint: an OAuth 2.1 authorization server, so Claude's custom connectors
(and any MCP client with OAuth support) can add FLORA without a pasted header.

The protocol is the MCP SDK's (`mcp.server.auth`: metadata, registration, /authorize, /token,
/revoke, bearer checks); this module supplies what the SDK leaves to a server:

- `LedgerProvider`: clients, codes and tokens in the ledger's shared store (SQLite or PostgreSQL, so
  replicas accept each other's tokens). Codes and tokens are stored only as SHA-256 names; the
  user's FLORA key only sealed with AES-GCM under FLORA_TOKEN_SECRET.
- the consent page (/consent): the user pastes their FLORA key once; FLORA must accept it before a
  code is issued.
- `OAuthGate`: on MCP paths, an OAuth token is swapped for the user's FLORA key inside the process,
  so the key gate, rate limits and the per-user ledger downstream treat both sign-in kinds alike.
  `Authorization: Bearer sk_…` (a FLORA key) passes through untouched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from html import escape
from importlib import resources
from string import Template
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    ProviderTokenVerifier,
    RefreshToken,
    RegistrationError,
    TokenError,
    construct_redirect_uri,
)
from mcp.server.auth.routes import build_resource_metadata_url, create_auth_routes, create_protected_resource_routes
from mcp.server.auth.settings import ClientRegistrationOptions, RevocationOptions
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import AnyHttpUrl, SecretStr
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .._ids import user_id
from ..config import Settings
from ..errors import AuthenticationError, FloraError
from ..telemetry import sign_in

logger = logging.getLogger("flora_mcp.oauth")

SCOPE = "flora"
ACCESS_PREFIX = "fmcp_at_"  # our tokens are told from FLORA keys (sk_…) by these prefixes
REFRESH_PREFIX = "fmcp_rt_"
CODE_PREFIX = "fmcp_code_"
OUR_TOKEN_PREFIX = "fmcp_"  # every credential this server issues; none of them is ever a FLORA key
REQUEST_TTL = 600  # seconds a user has to finish the consent page
CODE_TTL = 300
CLIENT_TTL = 365 * 86400  # a client that completed a sign-in
UNUSED_CLIENT_TTL = 3600  # a client that never did: registered, then abandoned (or a flood)
MAX_CLIENT_METADATA = 4096  # bytes of a registered client's record; real clients send a few hundred
CSRF_COOKIE = "flora_consent"
CONSENT_ATTEMPTS_PER_MINUTE = 20  # per client address: the consent page checks keys against FLORA
REGISTRATIONS_PER_HOUR = 1000  # per client address (Claude registers from its own servers); with the two
# caps above, one address holds at most ~4 MB of unused clients at any time
AUTHORIZE_PER_MINUTE = 60  # per client address


class OAuthConfigError(ValueError):
    """OAuth mode was asked for but cannot start safely."""


def urls(settings: Settings) -> tuple[str, str]:
    """(issuer, resource): FLORA_PUBLIC_URL, or this loopback address. The resource is the server's root,
    so one token serves /mcp and /sse."""
    if settings.public_url:
        base = settings.public_url.rstrip("/")
    elif settings.host in ("127.0.0.1", "localhost", "::1"):
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        base = f"http://{host}:{settings.port}"
    else:
        raise OAuthConfigError("FLORA_OAUTH needs FLORA_PUBLIC_URL (the https:// address clients reach this server "
                               "at) when bound beyond loopback")
    return base, base


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def redirect_uri_problem(uri: str) -> str | None:
    """Why a client may not send users to `uri`, or None. Only https:// and loopback http:// (RFC 8252
    §7.3: a native app's local listener), without a fragment (RFC 6749 §3.1.2): no javascript:, data:,
    file: or plain-http host a code or an error could be sent to."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError:
        return f"{uri[:100]!r} is not a URL"
    if "#" in uri:
        return f"{uri[:100]!r} has a fragment; a redirect URI may not (RFC 6749 §3.1.2)"
    scheme = parts.scheme.lower()
    if scheme == "https" and host:
        return None
    if scheme == "http" and host in _LOOPBACK_HOSTS:
        return None
    return (f"{uri[:100]!r} is not allowed: use an https:// URL, or http:// on 127.0.0.1, [::1] or localhost "
            "for an app on this machine (RFC 8252)")


class Sealer:
    """AES-GCM under a key derived from FLORA_TOKEN_SECRET: FLORA keys are stored only sealed."""

    def __init__(self, secret: SecretStr | None) -> None:
        raw = secret.get_secret_value() if secret else ""
        if len(raw) < 32:
            raise OAuthConfigError(
                "FLORA_OAUTH needs FLORA_TOKEN_SECRET of at least 32 characters (it encrypts stored FLORA keys); "
                "make one with: python -c \"import secrets; print(secrets.token_urlsafe(32))\"")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"flora-mcp oauth key seal").derive(raw.encode())
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, context: str) -> str:
        nonce = secrets.token_bytes(12)
        return base64.urlsafe_b64encode(nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())).decode()

    def open(self, sealed: str, context: str) -> str | None:
        try:
            blob = base64.urlsafe_b64decode(sealed)
            return self._aead.decrypt(blob[:12], blob[12:], context.encode()).decode()
        except (InvalidTag, ValueError):
            logger.warning("a stored FLORA key did not decrypt (FLORA_TOKEN_SECRET changed?); sign in again")
            return None


class FloraCode(AuthorizationCode):
    sealed_key: str
    signed_in: float  # when the user consented: a later "sign out everywhere" ends this sign-in


class FloraRefreshToken(RefreshToken):
    grant: str
    sealed_key: str
    access_hash: str
    signed_in: float


class FloraAccessToken(AccessToken):
    grant: str
    signed_in: float
    flora_key: SecretStr  # the user's key, opened for this request only; never rendered


class LedgerProvider:
    """The SDK's OAuthAuthorizationServerProvider on the ledger's key-value store.

    Each consent starts a grant; the grant names its current access and refresh token, so revoking
    one token, replaying a code or reusing a rotated refresh token ends the whole grant. A user's
    "sign out everywhere" ends every grant they made before it.
    """

    def __init__(self, store: Any, sealer: Sealer, *, issuer: str, resource: str, access_ttl: int,
                 refresh_ttl: int) -> None:
        self.store, self.sealer = store, sealer
        self.issuer, self.resource = issuer, resource
        self.access_ttl, self.refresh_ttl = access_ttl, refresh_ttl

    # --- clients -----------------------------------------------------------------------------------------
    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        raw = await self.store.get(f"oauth:client:{client_id}")
        return OAuthClientInformationFull.model_validate_json(raw) if raw else None

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        """Stored for an hour until it completes a sign-in (then a year), with its secret only hashed."""
        for uri in client_info.redirect_uris or []:
            if problem := redirect_uri_problem(str(uri)):
                raise RegistrationError("invalid_redirect_uri", problem)
        stored = client_info.model_copy(update={
            "client_secret": _hash(client_info.client_secret) if client_info.client_secret else None})
        record = stored.model_dump_json(exclude_none=True)
        if len(record) > MAX_CLIENT_METADATA:
            raise RegistrationError("invalid_client_metadata", f"client metadata is {len(record):,} bytes; this server "
                                    f"keeps at most {MAX_CLIENT_METADATA:,} (redirect_uris, client_name and the "
                                    "grant and auth settings are all a client needs)")
        await self.store.put(f"oauth:client:{client_info.client_id}", record, UNUSED_CLIENT_TTL)

    async def _keep_client(self, client_id: str) -> None:
        """A client completed a sign-in: keep it for CLIENT_TTL."""
        raw = await self.store.get(f"oauth:client:{client_id}")
        if raw is not None:
            await self.store.put(f"oauth:client:{client_id}", raw, CLIENT_TTL)

    # --- authorize: park the request until the user consents -----------------------------------------------
    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        if problem := redirect_uri_problem(str(params.redirect_uri)):  # a client registered before the check
            raise AuthorizeError("invalid_request", f"redirect_uri {problem}")
        if params.resource is not None and not self.is_our_resource(params.resource):
            raise AuthorizeError("invalid_target", f"this server issues tokens only for {self.resource}")
        raw_client = await self.store.get(f"oauth:client:{client.client_id}")
        if raw_client is not None and not await self.store.get(f"oauth:client-used:{client.client_id}"):
            # an unused client lives on while its user is on the consent page
            await self.store.put(f"oauth:client:{client.client_id}", raw_client, UNUSED_CLIENT_TTL + REQUEST_TTL)
        request_id = secrets.token_urlsafe(24)
        await self.store.put(f"oauth:request:{_hash(request_id)}", json.dumps({
            "client_id": client.client_id, "params": params.model_dump(mode="json")}), REQUEST_TTL)
        return f"{self.issuer}/consent?request={request_id}"

    def is_our_resource(self, resource: str) -> bool:
        """This server or a URL on it: clients name the root (from our metadata) or the endpoint (…/mcp)."""
        ours, asked = urlsplit(self.resource), urlsplit(resource)
        return ((asked.scheme.lower(), asked.netloc.lower()) == (ours.scheme.lower(), ours.netloc.lower())
                and (asked.path.rstrip("/") + "/").startswith(ours.path.rstrip("/") + "/"))

    async def pending(self, request_id: str) -> tuple[OAuthClientInformationFull, AuthorizationParams] | None:
        raw = await self.store.get(f"oauth:request:{_hash(request_id)}") if request_id else None
        if raw is None:
            return None
        record = json.loads(raw)
        client = await self.get_client(record["client_id"])
        return (client, AuthorizationParams.model_validate(record["params"])) if client else None

    async def approve(self, request_id: str, flora_key: str) -> str | None:
        """The user's FLORA key was accepted: issue a code (once per request) and return the redirect."""
        raw = await self.store.take(f"oauth:request:{_hash(request_id)}")
        if raw is None:
            return None
        record = json.loads(raw)
        params = AuthorizationParams.model_validate(record["params"])
        code = CODE_PREFIX + secrets.token_urlsafe(32)
        subject = user_id(self.issuer, flora_key)
        stored = FloraCode(
            code="", scopes=params.scopes or [SCOPE], expires_at=time.time() + CODE_TTL,
            client_id=record["client_id"], code_challenge=params.code_challenge, redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            resource=self.resource, subject=subject,  # bound to this server, whichever of its URLs was named
            sealed_key=self.sealer.seal(flora_key, subject), signed_in=time.time())
        await self.store.put(f"oauth:code:{_hash(code)}", stored.model_dump_json(), CODE_TTL)
        return construct_redirect_uri(str(params.redirect_uri), code=code, state=params.state)

    async def deny(self, request_id: str) -> str | None:
        raw = await self.store.take(f"oauth:request:{_hash(request_id)}")
        if raw is None:
            return None
        params = AuthorizationParams.model_validate(json.loads(raw)["params"])
        return construct_redirect_uri(str(params.redirect_uri), error="access_denied",
                                      error_description="The user declined", state=params.state)

    # --- codes -------------------------------------------------------------------------------------------
    async def load_authorization_code(self, client: OAuthClientInformationFull, authorization_code: str) -> FloraCode | None:
        name = _hash(authorization_code)
        raw = await self.store.get(f"oauth:code:{name}")
        if raw is None:
            # RFC 6749 §4.1.2: a code used twice revokes what it issued.
            grant = await self.store.get(f"oauth:code-used:{name}")
            if grant:
                logger.warning("authorization code replayed; its tokens are revoked (client %s)", client.client_id)
                await self.end_grant(grant)
            return None
        code = FloraCode.model_validate_json(raw)
        if await self.signed_out_since(code.subject or "", code.signed_in):
            return None
        return code.model_copy(update={"code": authorization_code})

    async def exchange_authorization_code(self, client: OAuthClientInformationFull, authorization_code: FloraCode) -> OAuthToken:
        name = _hash(authorization_code.code)
        if await self.store.take(f"oauth:code:{name}") is None:  # another exchange won the race
            raise TokenError("invalid_grant", "authorization code already used")
        grant = secrets.token_urlsafe(16)
        sign_in("token", "issued")
        await self.store.put(f"oauth:code-used:{name}", grant, CODE_TTL * 2)
        if not await self.store.get(f"oauth:client-used:{client.client_id}"):
            await self.store.put(f"oauth:client-used:{client.client_id}", "1", CLIENT_TTL)
            await self._keep_client(client.client_id)
        return await self._issue(grant, client.client_id, authorization_code.scopes,
                                 authorization_code.resource or self.resource, authorization_code.subject or "",
                                 authorization_code.sealed_key, authorization_code.signed_in)

    # --- refresh tokens (rotated on every use) ---------------------------------------------------------------
    async def load_refresh_token(self, client: OAuthClientInformationFull, refresh_token: str) -> FloraRefreshToken | None:
        if not refresh_token.startswith(REFRESH_PREFIX):
            return None
        name = _hash(refresh_token)
        raw = await self.store.get(f"oauth:rt:{name}")
        if raw is None:
            grant = await self.store.get(f"oauth:rt-used:{name}")
            if grant:  # a rotated-out token came back: someone holds a copy, so end the grant
                logger.warning("refresh token reused; its grant is revoked (client %s)", client.client_id)
                await self.end_grant(grant)
            return None
        token = FloraRefreshToken.model_validate_json(raw)
        if await self.signed_out_since(token.subject or "", token.signed_in):
            return None
        if self.sealer.open(token.sealed_key, token.subject or "") is None:  # FLORA_TOKEN_SECRET changed
            return None
        return token.model_copy(update={"token": refresh_token})

    async def exchange_refresh_token(self, client: OAuthClientInformationFull, refresh_token: FloraRefreshToken,
                                     scopes: list[str]) -> OAuthToken:
        name = _hash(refresh_token.token)
        if await self.store.take(f"oauth:rt:{name}") is None:
            raise TokenError("invalid_grant", "refresh token already used")
        sign_in("refresh", "issued")
        await self.store.put(f"oauth:rt-used:{name}", refresh_token.grant, self.refresh_ttl)
        await self.store.delete(f"oauth:at:{refresh_token.access_hash}")
        return await self._issue(refresh_token.grant, client.client_id, scopes,
                                 refresh_token.resource or self.resource, refresh_token.subject or "",
                                 refresh_token.sealed_key, refresh_token.signed_in)

    # --- access tokens -----------------------------------------------------------------------------------
    async def load_access_token(self, token: str) -> FloraAccessToken | None:
        if not token.startswith(ACCESS_PREFIX):
            return None
        raw = await self.store.get(f"oauth:at:{_hash(token)}")
        if raw is None:
            return None
        record = json.loads(raw)
        if await self.signed_out_since(record["subject"], record["signed_in"]):
            return None
        key = self.sealer.open(record.pop("sealed_key"), record["subject"])
        if key is None:
            return None
        return FloraAccessToken(token=token, flora_key=SecretStr(key), **record)

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        grant = getattr(token, "grant", None)
        if grant:
            await self.end_grant(grant)

    async def sign_out_everywhere(self, flora_key: str) -> None:
        """End every sign-in made with this FLORA key until now (held as long as a refresh token lives)."""
        await self.store.put(f"oauth:signed-out:{user_id(self.issuer, flora_key)}", str(time.time()),
                             self.refresh_ttl)

    async def signed_out_since(self, subject: str, signed_in: float) -> bool:
        raw = await self.store.get(f"oauth:signed-out:{subject}")
        return raw is not None and float(raw) >= signed_in

    async def end_grant(self, grant: str) -> None:
        raw = await self.store.take(f"oauth:grant:{grant}")
        if raw:
            current = json.loads(raw)
            await self.store.delete(f"oauth:at:{current['at']}")
            await self.store.delete(f"oauth:rt:{current['rt']}")

    async def _issue(self, grant: str, client_id: str, scopes: list[str], resource: str, subject: str,
                     sealed_key: str, signed_in: float) -> OAuthToken:
        access, refresh = ACCESS_PREFIX + secrets.token_urlsafe(32), REFRESH_PREFIX + secrets.token_urlsafe(32)
        at, rt = _hash(access), _hash(refresh)
        now = int(time.time())
        common = {"client_id": client_id, "scopes": scopes, "resource": resource, "subject": subject, "grant": grant,
                  "signed_in": signed_in}
        await self.store.put(f"oauth:at:{at}", json.dumps(
            common | {"expires_at": now + self.access_ttl, "sealed_key": sealed_key}), self.access_ttl)
        await self.store.put(f"oauth:rt:{rt}", FloraRefreshToken(
            token="", expires_at=now + self.refresh_ttl, sealed_key=sealed_key, access_hash=at, **common,
        ).model_dump_json(), self.refresh_ttl)
        await self.store.put(f"oauth:grant:{grant}", json.dumps({"at": at, "rt": rt}), self.refresh_ttl)
        return OAuthToken(access_token=access, expires_in=self.access_ttl, scope=" ".join(scopes),
                          refresh_token=refresh)


# --- the consent page ------------------------------------------------------------------------------------

def _template(name: str) -> Template:
    return Template(resources.files(__package__).joinpath(name).read_text(encoding="utf-8"))


_PAGE, _CONSENT, _SIGNOUT = _template("page.html"), _template("consent.html"), _template("signout.html")
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",  # keeps the Origin header the CSRF check reads
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
                               "base-uri 'none'",
}


class ConsentPage:
    """GET shows who asks and where the answer goes; POST checks the pasted key with FLORA first."""

    def __init__(self, provider: LedgerProvider, client_for_key: Any) -> None:
        self.provider = provider
        self.client_for_key = client_for_key
        self.secure_cookie = provider.issuer.startswith("https://")

    async def handle(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._post(request)
        request_id = request.query_params.get("request", "")
        pending = await self.provider.pending(request_id)
        if pending is None:
            return self._gone()
        csrf = secrets.token_urlsafe(24)
        response = self._page(request_id, pending, csrf)
        response.set_cookie(CSRF_COOKIE, csrf, max_age=REQUEST_TTL, path="/consent", httponly=True,
                            samesite="strict", secure=self.secure_cookie)
        return response

    async def _post(self, request: Request) -> Response:
        form = await request.form()
        request_id = str(form.get("request", ""))
        csrf = str(form.get("csrf", ""))
        if not _csrf_ok(request, form, self.provider.issuer):
            return self._message("This form expired or came from another site",
                                 "Go back to your app and start signing in again.", 403)
        pending = await self.provider.pending(request_id)
        if pending is None:
            return self._gone()
        if form.get("action") == "deny":
            target = await self.provider.deny(request_id)
            return RedirectResponse(target, status_code=303, headers=_PAGE_HEADERS) if target else self._gone()

        address = request.client.host if request.client else "unknown"
        if await self.provider.store.count(f"oauth:consent-rate:{address}", 60) > CONSENT_ATTEMPTS_PER_MINUTE:
            return self._page(request_id, pending, csrf, "Too many attempts from this address. Wait a minute and "
                              "try again.", 429)
        key = str(form.get("api_key", "")).strip()
        if not key:
            return self._page(request_id, pending, csrf, "Paste your FLORA API key (it starts with sk_).", 400)
        try:
            await self.client_for_key(key).list_workspaces()
        except AuthenticationError:
            sign_in("consent", "key_rejected")
            return self._page(request_id, pending, csrf, "FLORA did not accept this API key. Copy it again from "
                              "FLORA's settings (API keys) and paste the whole key.", 400)
        except FloraError:
            sign_in("consent", "flora_unavailable")
            return self._page(request_id, pending, csrf, "FLORA could not be reached to check your key. Try again "
                              "in a moment.", 503)
        target = await self.provider.approve(request_id, key)
        sign_in("consent", "approved" if target else "expired")
        if target is None:
            return self._gone()
        return RedirectResponse(target, status_code=303, headers=_PAGE_HEADERS)

    def _page(self, request_id: str, pending: tuple[OAuthClientInformationFull, AuthorizationParams], csrf: str,
              error: str | None = None, status: int = 200) -> HTMLResponse:
        client, params = pending
        name = client.client_name or client.client_id
        main = _CONSENT.substitute(
            client_name=escape(name), redirect_uri=escape(str(params.redirect_uri)), request_id=escape(request_id),
            csrf=escape(csrf), error=_error_html(error), invalid="true" if error else "false",
            described="key-help key-error" if error else "key-help")
        return _html(f"Connect {name} to FLORA", main, status)

    def _gone(self) -> HTMLResponse:
        return self._message("This sign-in link has expired or was already used",
                             "Go back to your app and connect FLORA again.", 410)

    def _message(self, title: str, text: str, status: int) -> HTMLResponse:
        return _message(title, text, status)


def _html(title: str, main: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.substitute(title=escape(title), main=main), status_code=status, headers=_PAGE_HEADERS)


def _message(title: str, text: str, status: int) -> HTMLResponse:
    return _html(title, f'  <h1>{escape(title)}</h1>\n  <p role="alert">{escape(text)}</p>\n', status)


def _error_html(error: str | None) -> str:
    return f'<p id="key-error" class="error" role="alert">{escape(error)}</p>' if error else ""


def _csrf_ok(request: Request, form: Any, issuer: str) -> bool:
    """Double-submit: the form's token equals the cookie set with the page, and the POST came from this site."""
    csrf = str(form.get("csrf", ""))
    origin = request.headers.get("origin")
    return bool(csrf) and hmac.compare_digest(csrf, request.cookies.get(CSRF_COOKIE, "")) and origin in (None, issuer)


class SignOutPage:
    """A user ends every sign-in made with their key: paste the key, confirm. Works without FLORA."""

    def __init__(self, provider: LedgerProvider) -> None:
        self.provider = provider

    async def handle(self, request: Request) -> Response:
        if request.method == "GET":
            csrf = secrets.token_urlsafe(24)
            response = _html("Sign out of FLORA everywhere", _SIGNOUT.substitute(csrf=csrf, error=""))
            response.set_cookie(CSRF_COOKIE, csrf, max_age=REQUEST_TTL, path="/signout", httponly=True,
                                samesite="strict", secure=self.provider.issuer.startswith("https://"))
            return response
        form = await request.form()
        if not _csrf_ok(request, form, self.provider.issuer):
            return _message("This form expired or came from another site", "Open the sign-out page again.", 403)
        address = request.client.host if request.client else "unknown"
        if await self.provider.store.count(f"oauth:signout-rate:{address}", 60) > CONSENT_ATTEMPTS_PER_MINUTE:
            return _message("Too many attempts from this address", "Wait a minute and try again.", 429)
        key = str(form.get("api_key", "")).strip()
        if not key:
            main = _SIGNOUT.substitute(csrf=escape(str(form.get("csrf", ""))),
                                       error=_error_html("Paste the FLORA API key you connected with."))
            return _html("Sign out of FLORA everywhere", main, 400)
        await self.provider.sign_out_everywhere(key)
        return _message("Signed out everywhere", "Every app connected with this key must sign in again.", 200)


# --- wiring ----------------------------------------------------------------------------------------------

class OAuthGate:
    """ASGI middleware in front of the key gate, on MCP paths only.

    A `fmcp_at_…` token is checked by the SDK's bearer backend (known, unexpired, issued for this
    resource) and replaced by the user's FLORA key for the rest of the request; anything else passes
    as before. Every 401 on an MCP path names the protected-resource metadata (RFC 9728), which is how
    an OAuth client finds where to sign in.
    """

    def __init__(self, app: ASGIApp, provider: LedgerProvider, mcp_paths: tuple[str, ...]) -> None:
        self.app = app
        self.mcp_paths = mcp_paths
        self.backend = BearerAuthBackend(ProviderTokenVerifier(provider),  # type: ignore[arg-type]
                                         resource_server_url=AnyHttpUrl(provider.resource))
        metadata = str(build_resource_metadata_url(AnyHttpUrl(provider.resource)))
        self.challenge = f'Bearer resource_metadata="{metadata}"'

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.mcp_paths):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if token.startswith(OUR_TOKEN_PREFIX) and not token.startswith(ACCESS_PREFIX):
            # a refresh token or a code where an access token belongs: ours, so it never goes to FLORA
            await self._deny(send, "invalid_token", "This is a refresh token or authorization code, not an access "
                             "token; exchange it at /token and send the access token")
            return
        if token.startswith(ACCESS_PREFIX):
            result = await self.backend.authenticate(HTTPConnection(scope))
            if result is None:
                await self._deny(send, "invalid_token", "This sign-in has expired or was revoked; sign in again")
                return
            credentials, user = result
            key = user.access_token.flora_key.get_secret_value()
            scope = dict(scope, user=user, auth=credentials, headers=[
                (k, v) for k, v in scope["headers"] if k != b"authorization"] + [
                (b"authorization", f"Bearer {key}".encode("latin-1"))])

        async def challenged_send(message: dict) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                message = dict(message, headers=[(k, v) for k, v in message.get("headers", [])
                                                 if k.lower() != b"www-authenticate"]
                               + [(b"www-authenticate", self._header().encode())])
            await send(message)

        await self.app(scope, receive, challenged_send)

    def _header(self, error: str | None = None) -> str:
        return self.challenge + (f', error="{error}"' if error else "")

    async def _deny(self, send: Send, error: str, description: str) -> None:
        body = json.dumps({"error": error, "error_description": description}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", self._header(error).encode())]})
        await send({"type": "http.response.body", "body": body})


def oauth_routes(settings: Settings, store: Any, client_for_key: Any) -> tuple[list[Route], LedgerProvider]:
    """The SDK's OAuth routes plus the consent page, and the provider behind them.

    Raises OAuthConfigError when OAuth cannot run safely (no FLORA_TOKEN_SECRET, no public URL).
    """
    sealer = Sealer(settings.token_secret)
    issuer, resource = urls(settings)
    provider = LedgerProvider(store, sealer, issuer=issuer, resource=resource,
                              access_ttl=settings.oauth_access_ttl, refresh_ttl=settings.oauth_refresh_ttl)
    routes = create_auth_routes(
        provider, AnyHttpUrl(issuer),
        client_registration_options=ClientRegistrationOptions(enabled=True, valid_scopes=[SCOPE],
                                                              default_scopes=[SCOPE]),
        revocation_options=RevocationOptions(enabled=True))
    routes += create_protected_resource_routes(AnyHttpUrl(resource), [AnyHttpUrl(issuer)], scopes_supported=[SCOPE],
                                               resource_name="FLORA")
    consent = ConsentPage(provider, client_for_key)
    routes.append(Route("/consent", consent.handle, methods=["GET", "POST"]))
    routes.append(Route("/signout", SignOutPage(provider).handle, methods=["GET", "POST"]))
    for route in routes:
        if route.path == "/authorize":
            route.app = _errors_on_our_page(route.app, issuer)
        elif route.path in ("/token", "/revoke"):
            route.app = _secrets_hashed(route.app)
    return _capped(routes, store), provider


def _errors_on_our_page(inner: ASGIApp, issuer: str) -> ASGIApp:
    """/authorize sends the browser only to our consent page. The SDK redirects a bad request (scope,
    resource, response_type, PKCE method) back to the client's registered URL with the error; since
    anyone may register a client, that made /authorize an open redirector (RFC 9700 §4.11.2). Such an
    error is shown here instead, on our own page, and the user goes back to their app."""
    ours = issuer.rstrip("/") + "/"

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        held: dict[str, Any] = {}

        async def checked_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                location = dict(message.get("headers", [])).get(b"location", b"").decode("latin-1")
                if 300 <= message["status"] < 400 and not location.startswith(ours):
                    held["error"] = dict(parse_qsl(urlsplit(location).query))
                    return
            elif held:
                if not message.get("more_body"):
                    error = held["error"]
                    response = _message("This sign-in request cannot be completed",
                                        f"{error.get('error', 'invalid_request')}: "
                                        f"{error.get('error_description', 'the request was refused')}. Go back "
                                        "to your app and connect again; if this repeats, tell its developer.", 400)
                    await response(scope, receive, send)
                return
            await send(message)

        await inner(scope, receive, checked_send)

    return guarded


def _secrets_hashed(inner: ASGIApp) -> ASGIApp:
    """Clients' secrets are stored only as hashes (see register_client), so the SDK's check at /token and
    /revoke compares hashes: the presented secret (form field or Basic header) is hashed on the way in."""

    async def hashing(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await inner(scope, receive, send)
            return
        headers = []
        for name, value in scope["headers"]:
            if name == b"authorization" and value[:6].lower() == b"basic ":
                value = _hashed_basic(value[6:])
            headers.append((name, value))
        body, more = b"", True
        while more:  # the SDK's body limit sits inside; these forms are small
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > 64 * 1024:
                break
        if b"client_secret=" in body:
            body = urlencode([(k, _hash(v) if k == "client_secret" and v else v)
                              for k, v in parse_qsl(body.decode("latin-1"), keep_blank_values=True)]).encode()
        headers = [(k, v) for k, v in headers if k != b"content-length"] + [(b"content-length", str(len(body)).encode())]
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await inner(dict(scope, headers=headers), replay, send)

    return hashing


def _hashed_basic(encoded: bytes) -> bytes:
    try:
        client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return b"Basic " + encoded  # the SDK answers a malformed header itself
    pair = f"{client_id}:{quote(_hash(unquote(secret)), safe='')}" if secret else f"{client_id}:"
    return b"Basic " + base64.b64encode(pair.encode())


def _capped(routes: list[Route], store: Any) -> list[Route]:
    """/register and /authorize write records anyone can ask for: cap them per client address so the
    store cannot be flooded. Registrations come from clients' servers (Claude's, for every Claude user),
    so their cap is generous; /authorize comes from one person's browser."""
    caps = {"/register": ("POST", REGISTRATIONS_PER_HOUR, 3600), "/authorize": (None, AUTHORIZE_PER_MINUTE, 60)}
    for route in routes:
        if route.path in caps:
            route.app = _cap(route.app, store, route.path, *caps[route.path])
    return routes


def _cap(inner: ASGIApp, store: Any, path: str, method: str | None, limit: int, window: int) -> ASGIApp:
    async def capped(scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        address = client[0] if client else "unknown"
        if (method is None or scope.get("method") == method) and scope.get("method") != "OPTIONS" and \
                await store.count(f"oauth:rate:{path}:{address}", window) > limit:
            body = json.dumps({"error": "temporarily_unavailable",
                               "error_description": f"too many requests to {path} from this address"}).encode()
            await send({"type": "http.response.start", "status": 429, "headers": [
                (b"content-type", b"application/json"), (b"retry-after", str(window).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await inner(scope, receive, send)

    return capped
