"""The two pages a person sees: /consent (paste the FLORA key once; FLORA must accept it before a code is
issued) and /signout (end every sign-in made with a key). Plain HTML from the templates beside this file.
"""

from __future__ import annotations

import hmac
import secrets
from html import escape
from importlib import resources
from string import Template
from typing import Any

from mcp.server.auth.provider import (
    AuthorizationParams,
)
from mcp.shared.auth import OAuthClientInformationFull
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ...errors import AuthenticationError, FloraError
from ...telemetry import sign_in
from .provider import REQUEST_TTL, LedgerProvider

CSRF_COOKIE = "flora_consent"
CONSENT_ATTEMPTS_PER_MINUTE = 20  # per client address: the consent page checks keys against FLORA


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
            return message_page("This form expired or came from another site",
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
        return message_page("This sign-in link has expired or was already used",
                            "Go back to your app and connect FLORA again.", 410)


def _html(title: str, main: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.substitute(title=escape(title), main=main), status_code=status, headers=_PAGE_HEADERS)


def message_page(title: str, text: str, status: int) -> HTMLResponse:
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
            return message_page("This form expired or came from another site", "Open the sign-out page again.", 403)
        address = request.client.host if request.client else "unknown"
        if await self.provider.store.count(f"oauth:signout-rate:{address}", 60) > CONSENT_ATTEMPTS_PER_MINUTE:
            return message_page("Too many attempts from this address", "Wait a minute and try again.", 429)
        key = str(form.get("api_key", "")).strip()
        if not key:
            main = _SIGNOUT.substitute(csrf=escape(str(form.get("csrf", ""))),
                                       error=_error_html("Paste the FLORA API key you connected with."))
            return _html("Sign out of FLORA everywhere", main, 400)
        await self.provider.sign_out_everywhere(key)
        return message_page("Signed out everywhere", "Every app connected with this key must sign in again.", 200)


