"""The OAuth provider: clients, codes and tokens in the ledger's shared store (SQLite or PostgreSQL, so
replicas accept each other's tokens). Codes and tokens are stored only as SHA-256 names; the user's
FLORA key only sealed with AES-GCM under FLORA_TOKEN_SECRET (`Sealer`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    RefreshToken,
    RegistrationError,
    TokenError,
    construct_redirect_uri,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import SecretStr

from ..._ids import user_id
from ...config import Settings
from ...telemetry import sign_in

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


def secret_hash(secret: str) -> str:
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
            "client_secret": secret_hash(client_info.client_secret) if client_info.client_secret else None})
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
        await self.store.put(f"oauth:request:{secret_hash(request_id)}", json.dumps({
            "client_id": client.client_id, "params": params.model_dump(mode="json")}), REQUEST_TTL)
        return f"{self.issuer}/consent?request={request_id}"

    def is_our_resource(self, resource: str) -> bool:
        """This server or a URL on it: clients name the root (from our metadata) or the endpoint (…/mcp)."""
        ours, asked = urlsplit(self.resource), urlsplit(resource)
        return ((asked.scheme.lower(), asked.netloc.lower()) == (ours.scheme.lower(), ours.netloc.lower())
                and (asked.path.rstrip("/") + "/").startswith(ours.path.rstrip("/") + "/"))

    async def pending(self, request_id: str) -> tuple[OAuthClientInformationFull, AuthorizationParams] | None:
        raw = await self.store.get(f"oauth:request:{secret_hash(request_id)}") if request_id else None
        if raw is None:
            return None
        record = json.loads(raw)
        client = await self.get_client(record["client_id"])
        return (client, AuthorizationParams.model_validate(record["params"])) if client else None

    async def approve(self, request_id: str, flora_key: str) -> str | None:
        """The user's FLORA key was accepted: issue a code (once per request) and return the redirect."""
        raw = await self.store.take(f"oauth:request:{secret_hash(request_id)}")
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
        await self.store.put(f"oauth:code:{secret_hash(code)}", stored.model_dump_json(), CODE_TTL)
        return construct_redirect_uri(str(params.redirect_uri), code=code, state=params.state)

    async def deny(self, request_id: str) -> str | None:
        raw = await self.store.take(f"oauth:request:{secret_hash(request_id)}")
        if raw is None:
            return None
        params = AuthorizationParams.model_validate(json.loads(raw)["params"])
        return construct_redirect_uri(str(params.redirect_uri), error="access_denied",
                                      error_description="The user declined", state=params.state)

    # --- codes -------------------------------------------------------------------------------------------
    async def load_authorization_code(self, client: OAuthClientInformationFull, authorization_code: str) -> FloraCode | None:
        name = secret_hash(authorization_code)
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
        name = secret_hash(authorization_code.code)
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
        name = secret_hash(refresh_token)
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
        name = secret_hash(refresh_token.token)
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
        raw = await self.store.get(f"oauth:at:{secret_hash(token)}")
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
        at, rt = secret_hash(access), secret_hash(refresh)
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


