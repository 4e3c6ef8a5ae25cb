"""Async client for the FLORA public API over one shared httpx2 connection pool.

The same code talks to app.flora.ai and to the embedded sandbox: only the base URL or the
transport differs. The API key is passed per client view (`with_api_key`), never kept in module
state, so the hosted server can serve many users over one pool.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import httpx2

from . import __version__
from ._ids import new_idempotency_key, user_id
from ._retry import RETRYABLE_STATUS, RetryPolicy, parse_retry_after
from .config import DEFAULT_BASE_URL
from .idempotency import IDEMPOTENCY_HEADER, key_was_spent
from .errors import (
    AcceptedRunLostError,
    ConfigurationError,
    FieldError,
    FloraConnectionError,
    FloraError,
    error_for_status,
)
from .models import (
    ActionList,
    ActionRunRequest,
    Asset,
    AssetFromSource,
    AttachedAsset,
    Canvas,
    CanvasAction,
    CanvasActionRequest,
    CanvasNodePage,
    CanvasPatch,
    CanvasPatched,
    CreatedAsset,
    CreateProjectRequest,
    GenerateRequest,
    ListProjectsRequest,
    ModelList,
    Project,
    ProjectPage,
    Run,
    RunStarted,
    TechniqueList,
    TechniqueRunRequest,
    UploadRequest,
    UploadReservation,
    WorkspaceList,
)

__all__ = ["AcceptedRunLostError", "FloraClient", "new_idempotency_key"]

logger = logging.getLogger("flora_mcp.client")

_MISSING_KEY = ConfigurationError(
    "No FLORA API key is configured",
    hint="Set FLORA_API_KEY (a key starting with sk_live_ from FLORA's settings), or start the server "
    "with --sandbox to try it without a key",
)


class FloraClient:
    """Typed FLORA API calls with retries. Create one per process; use `with_api_key` per user."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        http: httpx2.AsyncClient | None = None,
    ) -> None:
        self._api_key = api_key or None
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._owns_http = http is None
        self._http = http or httpx2.AsyncClient(
            transport=transport,
            timeout=httpx2.Timeout(timeout, connect=10.0),
            limits=httpx2.Limits(max_connections=100, max_keepalive_connections=20),
            headers={"User-Agent": f"flora-mcp/{__version__}", "Accept": "application/json"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:  # never show the key
        return f"FloraClient(base_url={self.base_url!r}, api_key={'set' if self._api_key else 'unset'})"

    @property
    def user_id(self) -> str:
        """This view's account, as the ledger names it (a hash of the base URL and the key)."""
        return user_id(self.base_url, self._api_key)

    def with_api_key(self, api_key: str | None) -> FloraClient:
        """A view with another key over the same connection pool (hosted mode: one view per user)."""
        view = FloraClient.__new__(FloraClient)
        view._api_key = api_key or None
        view.base_url = self.base_url
        view.retry = self.retry
        view._owns_http = False
        view._http = self._http
        return view

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> FloraClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- endpoints -----------------------------------------------------------------------------------
    async def list_workspaces(self) -> WorkspaceList:
        return WorkspaceList.model_validate(await self._request("GET", "/workspaces"))

    async def list_projects(self, request: ListProjectsRequest) -> ProjectPage:
        params = request.model_dump(exclude_none=True)
        return ProjectPage.model_validate(await self._request("GET", "/projects", params=params))

    async def create_project(self, request: CreateProjectRequest, *, idempotency_key: str | None = None) -> Project:
        body = request.model_dump(exclude_none=True)
        data = await self._request("POST", "/projects", json=body, idempotency_key=idempotency_key)
        return Project.model_validate(data.get("project", data))

    async def list_models(self, type: str | None = None) -> ModelList:
        params = {"type": type} if type else None
        return ModelList.model_validate(await self._request("GET", "/models", params=params))

    async def start_generation(self, request: GenerateRequest, *, idempotency_key: str | None = None,
                               resend: bool = False) -> RunStarted:
        """POST /generate. Always idempotent: one key per logical start, reused on every retry.

        `resend`: this key may have reached FLORA before (an earlier call's outcome is unknown), so a
        409 means "accepted then" (see idempotency.py)."""
        body = request.model_dump(exclude_none=True)
        data = await self._request("POST", "/generate", json=body, idempotency_key=idempotency_key, resend=resend)
        return RunStarted.model_validate(data)

    async def get_run(self, run_id: str) -> Run:
        return Run.model_validate(await self._request("GET", f"/runs/{run_id}"))

    async def list_actions(self) -> ActionList:
        return ActionList.model_validate(await self._request("GET", "/actions"))

    async def start_action_run(self, request: ActionRunRequest, *, idempotency_key: str | None = None,
                               resend: bool = False) -> RunStarted:
        body = request.model_dump(exclude_none=True)
        return RunStarted.model_validate(await self._request("POST", "/runs/action", json=body,
                                                             idempotency_key=idempotency_key, resend=resend))

    async def list_techniques(self, workspace_id: str) -> TechniqueList:
        data = await self._request("GET", "/techniques", params={"workspace_id": workspace_id})
        return TechniqueList.model_validate(data)

    async def start_technique_run(self, request: TechniqueRunRequest, *, idempotency_key: str | None = None,
                                  resend: bool = False) -> RunStarted:
        body = request.model_dump(exclude_none=True)
        return RunStarted.model_validate(await self._request("POST", "/runs/technique", json=body,
                                                             idempotency_key=idempotency_key, resend=resend))

    async def upload_asset(self, request: UploadRequest, data: bytes) -> Asset:
        """Reserve, send the bytes to the signed URL, complete: the three steps of an asset upload."""
        reservation = UploadReservation.model_validate(
            await self._request("POST", "/assets/uploads", json=request.model_dump()))
        headers = dict(reservation.upload_headers) | {"Content-Type": request.content_type}
        if self._api_key and _same_origin(reservation.upload_url, self.base_url):
            headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            response = await self._http.request(reservation.upload_method, reservation.upload_url,
                                                content=data, headers=headers)
        except httpx2.TransportError as exc:
            raise FloraConnectionError(f"Uploading the file failed: {type(exc).__name__}") from None
        if response.status_code >= 300:
            raise _error_from_response(response)
        return Asset.model_validate(await self._request("POST", f"/assets/{reservation.asset_id}/complete"))

    # --- projects and their canvas ----------------------------------------------------------------------
    async def get_project(self, project_id: str) -> Project:
        return Project.model_validate(await self._request("GET", f"/projects/{_seg(project_id)}"))

    async def get_canvas(self, project_id: str) -> Canvas:
        return Canvas.model_validate(await self._request("GET", f"/projects/{_seg(project_id)}/canvas"))

    async def patch_canvas(self, project_id: str, patch: CanvasPatch) -> CanvasPatched:
        data = await self._request("PATCH", f"/projects/{_seg(project_id)}/canvas",
                                   json=patch.model_dump(exclude_none=True))
        return CanvasPatched.model_validate(data)

    async def list_canvas_nodes(self, project_id: str, *, limit: int | None = None,
                                cursor: str | None = None) -> CanvasNodePage:
        params = {k: v for k, v in (("limit", limit), ("cursor", cursor)) if v is not None}
        data = await self._request("GET", f"/projects/{_seg(project_id)}/nodes", params=params or None)
        return CanvasNodePage.model_validate(data)

    async def create_asset_from_source(self, request: AssetFromSource, *,
                                       idempotency_key: str | None = None) -> CreatedAsset:
        data = await self._request("POST", "/assets", json=request.model_dump(exclude_none=True),
                                   idempotency_key=idempotency_key)
        return CreatedAsset.model_validate(data)

    async def attach_asset(self, project_id: str, asset_id: str, *, idempotency_key: str | None = None) -> AttachedAsset:
        data = await self._request("POST", f"/projects/{_seg(project_id)}/assets/{_seg(asset_id)}/attach",
                                   idempotency_key=idempotency_key)
        return AttachedAsset.model_validate(data)

    async def create_canvas_action(self, project_id: str, request: CanvasActionRequest, *,
                                   idempotency_key: str | None = None) -> CanvasAction:
        data = await self._request("POST", f"/projects/{_seg(project_id)}/actions",
                                   json=request.model_dump(exclude_none=True), idempotency_key=idempotency_key)
        return CanvasAction.model_validate(data)

    async def run_canvas_action(self, project_id: str, node_id: str, *, idempotency_key: str | None = None,
                                resend: bool = False) -> RunStarted:
        data = await self._request("POST", f"/projects/{_seg(project_id)}/actions/{_seg(node_id)}/run",
                                   idempotency_key=idempotency_key, resend=resend)
        return RunStarted.model_validate(data)

    @asynccontextmanager
    async def stream_output(self, url: str, *, follow_redirects: bool = True) -> AsyncIterator[httpx2.Response]:
        """Stream an output file. The key is sent only to FLORA's own origin, never to a media host.

        `follow_redirects=False` for URLs a user supplied: a redirect must not lead past a check
        made on the URL itself (hosted mode refuses private addresses).
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise FloraError(f"Refusing to fetch a non-http(s) output URL ({parts.scheme or 'no scheme'})")
        headers = {}
        if self._api_key and _same_origin(url, self.base_url):
            headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            async with self._http.stream("GET", url, headers=headers, follow_redirects=follow_redirects) as response:
                if response.status_code >= 300:
                    raise FloraError(f"Downloading the output failed with HTTP {response.status_code}")
                yield response
        except httpx2.TransportError as exc:
            raise FloraConnectionError(f"Downloading the output failed: {type(exc).__name__}") from None

    # --- the one request path ------------------------------------------------------------------------
    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        resend: bool = False,
    ) -> dict[str, Any]:
        if not self._api_key:
            raise _MISSING_KEY
        headers = {"Authorization": f"Bearer {self._api_key}"}
        if method == "POST":
            # Generated once per logical call and reused on every retry: a retry never starts a second run.
            idempotency_key = idempotency_key or new_idempotency_key()
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        url = self.base_url + path
        started = time.monotonic()
        attempt = 0
        may_have_arrived = resend  # could FLORA have processed an earlier attempt with this key?
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                response = await self._http.request(method, url, params=params, json=json, headers=headers)
            except httpx2.TransportError as exc:
                failure: FloraError = FloraConnectionError(f"{method} {path} failed: {type(exc).__name__}")
                # A request that was sent may have been processed before the connection failed.
                arrived_now = not isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.PoolTimeout)
            else:
                if response.status_code < 300:
                    return response.json() if response.content else {}
                failure = _error_from_response(response, secret=self._api_key)
                arrived_now = response.status_code >= 500
                if response.status_code not in RETRYABLE_STATUS:
                    if method == "POST" and idempotency_key and key_was_spent(failure) and (attempt > 1 or resend):
                        raise AcceptedRunLostError(idempotency_key) from None
                    failure.may_have_started = may_have_arrived
                    raise failure
                retry_after = failure.retry_after
            may_have_arrived = may_have_arrived or arrived_now
            delay = self.retry.delay(attempt, retry_after)
            out_of_time = time.monotonic() - started + delay > self.retry.max_total
            if attempt > self.retry.max_retries or out_of_time:
                failure.may_have_started = method == "POST" and may_have_arrived
                raise failure
            logger.info("FLORA %s %s: %s; retry %d in %.2fs", method, path, failure.code, attempt, delay)
            await anyio.sleep(delay)


def _seg(value: str) -> str:
    """One path segment: an ID can never step into another route ("prj_x/../runs")."""
    return quote(value, safe="")


def _same_origin(url: str, base_url: str) -> bool:
    a, b = urlsplit(url), urlsplit(base_url)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def _error_from_response(response: httpx2.Response, secret: str | None = None) -> FloraError:
    """Map the error envelope (or a bare failure) to the typed error tree.

    Should a server ever echo the key back in its message, it is cut out here, before the text
    can reach an exception, a log line or a tool result.
    """
    code: str | None = None
    message = f"FLORA answered HTTP {response.status_code}"
    fields: list[FieldError] = []
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            code = error.get("code") or None
            message = str(error.get("message") or message)
            for item in error.get("fields") or []:
                if isinstance(item, dict):
                    fields.append(FieldError(str(item.get("field", "")), str(item.get("message", ""))))
    except (json.JSONDecodeError, ValueError):
        pass
    if secret:
        message = message.replace(secret, "[redacted]")
        fields = [FieldError(f.field, f.message.replace(secret, "[redacted]")) for f in fields]
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return error_for_status(response.status_code, code, message, fields, retry_after)
