"""Sign-in for the hosted endpoint: an OAuth 2.1 authorization server, so Claude's custom connectors
(and any MCP client with OAuth support) can add FLORA without a pasted header.

The protocol is the MCP SDK's (`mcp.server.auth`: metadata, registration, /authorize, /token,
/revoke, bearer checks); this module supplies what the SDK leaves to a server:

- provider.py: `LedgerProvider`, clients, codes and tokens in the ledger's shared store, FLORA keys sealed.
- pages.py: the consent page (/consent) and the sign-out page (/signout).
- gate.py: `OAuthGate`, an OAuth token swapped for the user's FLORA key on MCP paths.
- guards.py: per-address caps and the other wrappers around the SDK's routes.
This file assembles them (`oauth_routes`).
"""

from __future__ import annotations

from typing import Any

from mcp.server.auth.routes import create_auth_routes, create_protected_resource_routes
from mcp.server.auth.settings import ClientRegistrationOptions, RevocationOptions
from pydantic import AnyHttpUrl
from starlette.routing import Route

from ...config import Settings
from .gate import OAuthGate
from .guards import capped, errors_on_our_page, secrets_hashed
from .pages import ConsentPage, SignOutPage
from .provider import SCOPE, UNUSED_CLIENT_TTL, LedgerProvider, OAuthConfigError, Sealer, urls

__all__ = ["UNUSED_CLIENT_TTL", "LedgerProvider", "OAuthConfigError", "OAuthGate", "oauth_routes"]


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
            route.app = errors_on_our_page(route.app, issuer)
        elif route.path in ("/token", "/revoke"):
            route.app = secrets_hashed(route.app)
    return capped(routes, store), provider

