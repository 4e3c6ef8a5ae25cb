"""Async client for the FLORA public API over one shared httpx2 connection pool.

The same code talks to app.flora.ai and to the embedded sandbox: only the base URL or the
transport differs. The API key is passed per client view (`with_api_key`), never kept in module
state, so the hosted server can serve many users over one pool.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import IO, Any, TypeVar
from urllib.parse import quote, urlsplit

import anyio
import httpx2
from pydantic import BaseModel, ValidationError

from ._ids import ID_PATTERN, key_hash, new_idempotency_key, user_id
from ._recent import Recent
from ._version import __version__
from .config import DEFAULT_BASE_URL
from .errors import (
    AcceptedRunLostError,
    ConfigurationError,
    FieldError,
    FloraConnectionError,
    FloraError,
    RateLimitError,
    error_for_status,
)
from .idempotency import IDEMPOTENCY_HEADER, canonical_json, key_was_spent
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
    FeedbackRecorded,
    FeedbackRequest,
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
from .retry import RETRYABLE_STATUS, RetryPolicy, parse_retry_after
from .telemetry import observed_send

__all__ = ["AcceptedRunLostError", "FloraClient", "new_idempotency_key"]

logger = logging.getLogger("flora_mcp.client")

PER_USER_REQUESTS = 8  # one key's FLORA requests in flight at once: a busy user cannot fill the shared pool
# Connections to FLORA at once. Above the hosted server's own cap on requests at once (MAX_CONNECTIONS,
# 1000): each request holds at most one FLORA connection, so the pool is never where one user's
# hanging calls make another user wait. (At 100, 20 users with 8 hung calls each held it all.)
POOL_CONNECTIONS = 1100
UPLOAD_CHUNK = 64 * 1024
_Model = TypeVar("_Model", bound=BaseModel)

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
        self._shared = _Shared(timeout)
        self._http = http or httpx2.AsyncClient(
            transport=transport,
            timeout=httpx2.Timeout(timeout, connect=10.0),
            limits=httpx2.Limits(max_connections=POOL_CONNECTIONS, max_keepalive_connections=20),
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
        view._shared = self._shared
        return view

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()
            await self._shared.user_urls.aclose()

    async def __aenter__(self) -> FloraClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- endpoints -----------------------------------------------------------------------------------
    async def list_workspaces(self) -> WorkspaceList:
        return self._parse(WorkspaceList, await self._request("GET", "/workspaces"))

    async def list_projects(self, request: ListProjectsRequest) -> ProjectPage:
        params = request.model_dump(exclude_none=True)
        return self._parse(ProjectPage, await self._request("GET", "/projects", params=params))

    async def create_project(self, request: CreateProjectRequest, *, idempotency_key: str | None = None) -> Project:
        body = request.model_dump(exclude_none=True)
        data = await self._request("POST", "/projects", json=body, idempotency_key=idempotency_key)
        return self._parse(Project, data.get("project", data))

    async def record_feedback(self, request: FeedbackRequest, *, idempotency_key: str | None = None) -> FeedbackRecorded:
        """POST /feedback: tell FLORA what was missing or wrong (not paid)."""
        data = await self._request("POST", "/feedback", json=request.model_dump(exclude_none=True),
                                   idempotency_key=idempotency_key)
        return self._parse(FeedbackRecorded, data)

    async def list_models(self, type: str | None = None) -> ModelList:
        params = {"type": type} if type else None
        return self._parse(ModelList, await self._request("GET", "/models", params=params))

    async def start_generation(self, request: GenerateRequest, *, idempotency_key: str | None = None,
                               resend: bool = False) -> RunStarted:
        """POST /generate. Always idempotent: one key per logical start, reused on every retry.

        `resend`: this key may have reached FLORA before (an earlier call's outcome is unknown), so a
        409 means "accepted then" (see idempotency.py)."""
        body = request.model_dump(exclude_none=True)
        data = await self._request("POST", "/generate", json=body, idempotency_key=idempotency_key, resend=resend)
        return self._run_started(data)

    async def get_run(self, run_id: str) -> Run:
        return self._parse(Run, await self._request("GET", f"/runs/{_segment(run_id)}"))

    async def list_actions(self) -> ActionList:
        return self._parse(ActionList, await self._request("GET", "/actions"))

    async def start_action_run(self, request: ActionRunRequest, *, idempotency_key: str | None = None,
                               resend: bool = False) -> RunStarted:
        body = request.model_dump(exclude_none=True)
        return self._run_started(await self._request("POST", "/runs/action", json=body,
                                                     idempotency_key=idempotency_key, resend=resend))

    async def list_techniques(self, workspace_id: str) -> TechniqueList:
        data = await self._request("GET", "/techniques", params={"workspace_id": workspace_id})
        return self._parse(TechniqueList, data)

    async def start_technique_run(self, request: TechniqueRunRequest, *, idempotency_key: str | None = None,
                                  resend: bool = False) -> RunStarted:
        body = request.model_dump(exclude_none=True)
        return self._run_started(await self._request("POST", "/runs/technique", json=body,
                                                     idempotency_key=idempotency_key, resend=resend))

    async def upload_asset(self, request: UploadRequest, data: bytes | IO[bytes]) -> Asset:
        """Reserve, send the bytes to the signed URL, complete: the three steps of an asset upload.

        `data` may be an open file of `request.size` bytes: it is streamed, never read whole.
        """
        reservation = self._parse(UploadReservation,
                                  await self._request("POST", "/assets/uploads", json=request.model_dump()))
        headers = dict(reservation.upload_headers) | {"Content-Type": request.content_type,
                                                      "Content-Length": str(request.size)}
        if self._api_key and _same_origin(reservation.upload_url, self.base_url):
            headers["Authorization"] = f"Bearer {self._api_key}"
        content = data if isinstance(data, bytes) else _chunks(data)
        try:
            response = await self._send(reservation.upload_method, reservation.upload_url,
                                        content=content, headers=headers)
        except httpx2.TransportError as exc:
            raise FloraConnectionError(f"Uploading the file failed: {type(exc).__name__}") from None
        except (httpx2.InvalidURL, ValueError):
            raise FloraError("FLORA's upload_url is not a valid URL", code="unexpected_response") from None
        if response.status_code >= 300:
            raise _error_from_response(response, secret=self._api_key)
        return self._parse(Asset, await self._request("POST", f"/assets/{_segment(reservation.asset_id)}/complete"))

    @asynccontextmanager
    async def open_user_url(self, url: str) -> AsyncIterator[httpx2.Response]:
        """Stream a URL a user supplied, through the guarded pool for such URLs (see urlfetch.py).

        Never sends the key; at most a few such fetches per user at once. Raises urlfetch.UrlRefused.
        """
        async with self._shared.user_urls.open(url, key_hash(self._api_key)) as response:
            yield response

    # --- projects and their canvas ----------------------------------------------------------------------
    async def get_project(self, project_id: str) -> Project:
        return self._parse(Project, await self._request("GET", f"/projects/{_segment(project_id)}"))

    async def get_canvas(self, project_id: str) -> Canvas:
        return self._parse(Canvas, await self._request("GET", f"/projects/{_segment(project_id)}/canvas"))

    async def patch_canvas(self, project_id: str, patch: CanvasPatch) -> CanvasPatched:
        data = await self._request("PATCH", f"/projects/{_segment(project_id)}/canvas",
                                   json=patch.model_dump(exclude_none=True))
        return self._parse(CanvasPatched, data)

    async def list_canvas_nodes(self, project_id: str, *, limit: int | None = None,
                                cursor: str | None = None) -> CanvasNodePage:
        params = {k: v for k, v in (("limit", limit), ("cursor", cursor)) if v is not None}
        data = await self._request("GET", f"/projects/{_segment(project_id)}/nodes", params=params or None)
        return self._parse(CanvasNodePage, data)

    async def create_asset_from_source(self, request: AssetFromSource, *,
                                       idempotency_key: str | None = None) -> CreatedAsset:
        data = await self._request("POST", "/assets", json=request.model_dump(exclude_none=True),
                                   idempotency_key=idempotency_key)
        return self._parse(CreatedAsset, data)

    async def attach_asset(self, project_id: str, asset_id: str, *, idempotency_key: str | None = None) -> AttachedAsset:
        data = await self._request("POST", f"/projects/{_segment(project_id)}/assets/{_segment(asset_id)}/attach",
                                   idempotency_key=idempotency_key)
        return self._parse(AttachedAsset, data)

    async def create_canvas_action(self, project_id: str, request: CanvasActionRequest, *,
                                   idempotency_key: str | None = None) -> CanvasAction:
        data = await self._request("POST", f"/projects/{_segment(project_id)}/actions",
                                   json=request.model_dump(exclude_none=True), idempotency_key=idempotency_key)
        return self._parse(CanvasAction, data)

    async def run_canvas_action(self, project_id: str, node_id: str, *, idempotency_key: str | None = None,
                                resend: bool = False) -> RunStarted:
        data = await self._request("POST", f"/projects/{_segment(project_id)}/actions/{_segment(node_id, NODE_ID_PATTERN)}/run",
                                   idempotency_key=idempotency_key, resend=resend)
        return self._run_started(data)

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
            async with self._user_slot(), self._http.stream("GET", url, headers=headers,
                                                            follow_redirects=follow_redirects) as response:
                if response.status_code >= 300:
                    raise FloraError(f"Downloading the output failed with HTTP {response.status_code}")
                yield response
        except httpx2.TransportError as exc:
            raise FloraConnectionError(f"Downloading the output failed: {type(exc).__name__}") from None
        except httpx2.InvalidURL:
            raise FloraError("The output URL is not a valid URL", code="unexpected_response") from None

    # --- what every request shares -------------------------------------------------------------------
    def _user_slot(self) -> anyio.Semaphore:
        """This key's share of the connection pool (see PER_USER_REQUESTS)."""
        return self._shared.slot(key_hash(self._api_key))

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx2.Response:
        async with self._user_slot():
            try:
                return await self._http.request(method, url, **kwargs)
            except httpx2.InvalidURL:  # a value too long (or malformed) for a URL: bad input, nothing was sent
                raise FloraError("a value in the request is too long or not valid in a URL; nothing was sent",
                                 code="invalid_argument", hint="Shorten the ID or query and call again") from None

    def _run_started(self, data: Any) -> RunStarted:
        """A paid start's 2xx answer. FLORA accepted (and charged) the start even when its answer is
        unusable, so that failure says the start may have happened: the caller must not forget it."""
        try:
            return self._parse(RunStarted, data)
        except FloraError as exc:
            exc.may_have_started = True
            raise

    def _parse(self, model: type[_Model], data: Any) -> _Model:
        """A FLORA answer as `model`; an answer that breaks the contract (a bad ID, a missing field) is a
        FloraError naming the field, never a pydantic traceback that could print the values it got."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
                                 for e in exc.errors(include_input=False, include_url=False)[:3])
            problems = redact(problems, self._api_key)
            raise FloraError(f"FLORA answered with something this server cannot use ({problems})",
                             code="unexpected_response",
                             hint="This is FLORA's side, not your input; try again later") from None

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
        if json is not None:
            headers["Content-Type"] = "application/json"
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
                response = await observed_send(self._send, method, path, attempt, url, params=params, headers=headers,
                                               **({"content": canonical_json(json)} if json is not None else {}))
            except httpx2.TransportError as exc:
                failure: FloraError = FloraConnectionError(f"{method} {path} failed: {type(exc).__name__}")
                # A request that was sent may have been processed before the connection failed.
                arrived_now = not isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.PoolTimeout)
            else:
                if response.status_code < 300:
                    try:
                        return response.json() if response.content else {}
                    except ValueError:  # cut short or not JSON: for a POST, it was still accepted
                        failure = FloraError(f"FLORA answered {method} {path} with an unreadable body",
                                             code="unexpected_response", status=response.status_code)
                        failure.may_have_started = method == "POST"
                        raise failure from None
                failure = _error_from_response(response, secret=self._api_key)
                arrived_now = response.status_code >= 500
                if response.status_code not in RETRYABLE_STATUS:
                    if method == "POST" and idempotency_key and key_was_spent(failure, resent=attempt > 1 or resend):
                        raise AcceptedRunLostError(idempotency_key) from None
                    failure.may_have_started = may_have_arrived
                    raise failure
                retry_after = failure.retry_after
            may_have_arrived = may_have_arrived or arrived_now
            if method == "PATCH" and may_have_arrived:  # no idempotency key: a resent patch could apply twice
                failure.may_have_started = True
                raise failure
            delay = self.retry.delay(attempt, retry_after)
            out_of_time = time.monotonic() - started + delay > self.retry.max_total
            if attempt > self.retry.max_retries or out_of_time:
                failure.may_have_started = method == "POST" and may_have_arrived
                raise failure
            logger.info("FLORA %s %s: %s; retry %d in %.2fs", method, path, failure.code, attempt, delay)
            await anyio.sleep(delay)


class _Shared:
    """What every per-user view of one client shares: the slots per key, the pool for user URLs."""

    def __init__(self, timeout: float) -> None:
        from .urlfetch import UserUrls

        # key tag -> semaphore. Bounded for a server that runs for months; evicting a busy key's entry
        # only lets that key briefly have a second set of slots.
        self.slots: Recent = Recent(10_000)
        self.user_urls = UserUrls(timeout)

    def slot(self, tag: str) -> anyio.Semaphore:
        slot = self.slots.get(tag)
        if slot is None:
            slot = self.slots[tag] = anyio.Semaphore(PER_USER_REQUESTS)
        return slot


NODE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # canvas node IDs are unprefixed (n1, prompt_2)


def _segment(value: str, pattern: str = ID_PATTERN) -> str:
    """An ID placed in a URL path: only our ID shape, so it can never add a segment or a query."""
    if not re.fullmatch(pattern, value):
        raise FloraError(f"Refusing to use {value[:80]!r} as an ID: IDs are letters, digits, '_' and '-'",
                         code="invalid_id", hint="Use an ID exactly as FLORA or list_* tools returned it")
    return quote(value, safe="")


async def _chunks(file: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := await anyio.to_thread.run_sync(file.read, UPLOAD_CHUNK):
        yield chunk


def _same_origin(url: str, base_url: str) -> bool:
    a, b = urlsplit(url), urlsplit(base_url)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


_REDACTED = "[redacted]"
_TOKEN = re.compile(r"[A-Za-z0-9_\-]+")
_WINDOW = 12  # any 12 characters of the key in a row count as the key


def redact(text: str, secret: str | None) -> str:
    """`text` without the key: whole, in any case, or any part of 12+ characters (a prefix, a cut).

    Applied to every string of a FLORA error before it becomes an exception, a log line or a tool
    result, because FLORA (or a proxy in between) may echo what it was sent.
    """
    if not secret or not text:
        return text
    text = re.sub(re.escape(secret), _REDACTED, text, flags=re.IGNORECASE)
    key = secret.lower()
    width = min(_WINDOW, len(key))
    windows = {key[i:i + width] for i in range(len(key) - width + 1)}

    def cut(match: re.Match[str]) -> str:
        token = match.group(0).lower()
        if len(token) >= width and any(w in token for w in windows):
            return _REDACTED
        return match.group(0)

    return _TOKEN.sub(cut, text)


def _error_from_response(response: httpx2.Response, secret: str | None = None) -> FloraError:
    """Map the error envelope (or a bare failure) to the typed error tree.

    Should a server ever echo the key back, it is cut out here (see `redact`), from every string,
    before the text can reach an exception, a log line or a tool result.
    """
    code: str | None = None
    message = f"FLORA answered HTTP {response.status_code}"
    clean = (lambda text: redact(str(text), secret))
    fields: list[FieldError] = []
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            code = clean(error.get("code") or "")[:100] or None
            message = clean(error.get("message") or message)
            for item in error.get("fields") or []:
                if isinstance(item, dict):
                    fields.append(FieldError(clean(item.get("field", "")), clean(item.get("message", ""))))
    except (json.JSONDecodeError, ValueError):
        pass
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if response.status_code == 429 and retry_after is not None:
        back = (datetime.now(UTC) + timedelta(seconds=retry_after)).strftime("%H:%M:%S UTC")
        hint = f"FLORA asks to wait {retry_after:.0f} s; try again after {back}"
        return RateLimitError(message, status=429, code=code, fields=fields, hint=hint, retry_after=retry_after)
    return error_for_status(response.status_code, code, message, fields, retry_after)
