"""Hosted safety (issue 12): each test replays one attack from the red-team report on loopback."""

from __future__ import annotations

import logging
import socket
import time
from contextlib import asynccontextmanager

import anyio
import httpx2
import pytest
from mcp.client import Client

from flora_mcp import urlfetch
from flora_mcp.client import FloraClient
from flora_mcp.errors import FloraError, RateLimitError
from flora_mcp.models import RunOutput
from flora_mcp.sandbox import Sandbox
from flora_mcp.server import create_server
from flora_mcp.server import outputs as outputs_module
from tests.helpers import call, first_ids, settings, text_of

KEY = "sk_live_Secret0123456789abcdefXYZ"


# --- a tiny loopback HTTP server ----------------------------------------------------------------------
class Origin:
    """Answers every GET with a small PNG body; records what it saw; can hold answers until released."""

    def __init__(self, hold: bool = False) -> None:
        self.hits = 0
        self.hosts: list[str] = []
        self.release = anyio.Event()
        if not hold:
            self.release.set()
        self.port = 0
        self.body = b"\x89PNG\r\n\x1a\n" + b"x" * 64

    async def handle(self, stream) -> None:
        async with stream:
            head = b""
            with anyio.move_on_after(10):
                while b"\r\n\r\n" not in head:
                    chunk = await stream.receive(4096)
                    if not chunk:
                        return
                    head += chunk
            self.hits += 1
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"host:"):
                    self.hosts.append(line.split(b":", 1)[1].strip().decode())
            await self.release.wait()
            await stream.send(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n"
                              b"Content-Length: %d\r\n\r\n" % len(self.body) + self.body)


@asynccontextmanager
async def origin(hold: bool = False, family: socket.AddressFamily = socket.AF_INET):
    server = Origin(hold)
    local = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    listener = await anyio.create_tcp_listener(local_host=local, local_port=0, family=family)
    server.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, server.handle)
        try:
            yield server
        finally:
            server.release.set()
            tg.cancel_scope.cancel()


def hosted_server(sandbox: Sandbox, key: str = "sk_sandbox_demo", **kw):
    return create_server(settings(**kw), client=sandbox.client(None), api_key_for=lambda ctx: key)


def allow_loopback(monkeypatch) -> None:
    """Tests can only reach loopback: let the guard treat 127.0.0.1 and ::1 as public."""
    real = urlfetch.is_public
    monkeypatch.setattr(urlfetch, "is_public", lambda a: a.is_loopback or real(a))


# --- 1. SSRF ------------------------------------------------------------------------------------------
async def test_hosted_upload_never_fetches_private_addresses_however_spelled(fast_sandbox):
    async with origin() as site:
        p = site.port
        attacks = [f"http://127.0.0.1:{p}?@8.8.8.8/", f"http://127.0.0.1:{p}#@8.8.8.8", f"http://localhost:{p}/x.png",
                   f"http://[::ffff:127.0.0.1]:{p}/x.png", f"http://2130706433:{p}/x.png", f"http://0x7f.1:{p}/",
                   "http://100.64.0.1/x.png", "http://169.254.169.254/latest/meta-data/", "http://[fd00::1]/x.png",
                   f"http://user@127.0.0.1:{p}/x.png"]
        async with Client(hosted_server(fast_sandbox)) as client:
            workspace_id, _ = await first_ids(client)
            for url in attacks:
                result, _ = await call(client, "upload_asset", {"url": url, "workspace_id": workspace_id})
                assert result.is_error, url
                assert "url:" in text_of(result) and "private" in text_of(result), (url, text_of(result))
        assert site.hits == 0


async def test_hosted_upload_resolves_once_and_connects_to_the_checked_address(fast_sandbox, monkeypatch):
    """DNS rebinding: the name answers a good address for the check and a bad one afterwards."""
    answers = iter([["127.0.0.1"], ["10.0.0.1"], ["10.0.0.1"]])
    asked: list[str] = []

    def rebinding(host: str) -> list[str]:
        asked.append(host)
        return next(answers)

    monkeypatch.setattr(urlfetch, "resolve", rebinding)
    monkeypatch.setattr(urlfetch, "is_public", lambda a: str(a) == "127.0.0.1")
    async with origin() as site, Client(hosted_server(fast_sandbox)) as client:
        workspace_id, _ = await first_ids(client)
        url = f"http://files.example:{site.port}/photo.png"
        result, asset = await call(client, "upload_asset", {"url": url, "workspace_id": workspace_id})
        assert not result.is_error, text_of(result)
        assert asset["status"] == "ready" and asset["bytes"] == len(site.body)
    assert asked == ["files.example"]
    assert site.hosts == [f"files.example:{site.port}"]  # the origin saw the name, not the address


async def test_hosted_upload_accepts_ipv6_urls(fast_sandbox, monkeypatch):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    allow_loopback(monkeypatch)
    try:
        cm = origin(family=socket.AF_INET6)
        site = await cm.__aenter__()
    except OSError:
        pytest.skip("no IPv6 loopback")
    try:
        async with Client(hosted_server(fast_sandbox)) as client:
            workspace_id, _ = await first_ids(client)
            result, asset = await call(client, "upload_asset", {"url": f"http://[::1]:{site.port}/a.png",
                                                                "workspace_id": workspace_id})
            assert not result.is_error, text_of(result)
            assert asset["status"] == "ready"
    finally:
        await cm.__aexit__(None, None, None)


# --- 2. path traversal ----------------------------------------------------------------------------------
async def test_an_agents_run_id_cannot_walk_to_other_endpoints(make_session, fast_sandbox):
    async with make_session() as client:
        for bad in ("run_/../../workspaces", "run_a/b", "run_..", "run_" + "a" * 65, "run_a?x=1"):
            result, _ = await call(client, "get_run", {"run_id": bad, "wait_seconds": 0})
            assert result.is_error and "run_id" in text_of(result), (bad, text_of(result))


def _flora_stub(handler) -> FloraClient:
    return FloraClient(KEY, base_url="https://flora.test/api/v1", transport=httpx2.MockTransport(handler))


async def test_a_hostile_flora_answer_cannot_write_outside_the_output_folder(tmp_path):
    out = tmp_path / "out"
    victim = tmp_path / ".bashrc"

    def serve(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=b"pwned", headers={"content-type": "text/plain"})

    async with _flora_stub(serve) as client:
        hostile = [("run_/../../x", RunOutput(output_id="", type="text", url="https://cdn.test/../../.bashrc")),
                   ("run_ok", RunOutput(output_id="../../.bashrc", type="text", url="https://cdn.test/.bashrc")),
                   ("..", RunOutput(output_id="..", type="text", url="https://cdn.test/x")),
                   ("run_ok", RunOutput(output_id="", type="text", url="https://cdn.test/.bashrc"))]
        for run_id, output in hostile:
            try:
                path, _, _ = await outputs_module.save(client, run_id, output, out)
            except FloraError:
                continue
            assert path.resolve().is_relative_to(out.resolve()), path
            assert not path.name.startswith("."), path
    assert not victim.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


async def test_ids_from_flora_are_checked_before_use(tmp_path):
    def serve(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json={"run_id": "run_/../../etc", "status": "completed", "progress": 1,
                                          "created_at": 0, "outputs": []})

    async with _flora_stub(serve) as client:
        with pytest.raises(FloraError) as caught:
            await client.get_run("run_abc123")
    assert "run_id" in str(caught.value)


async def test_an_aborted_save_leaves_no_partial_file(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs_module, "FETCH_MAX_BYTES", 1000)

    def serve(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=b"x" * 5000, headers={"content-type": "image/png"})

    async with _flora_stub(serve) as client:
        with pytest.raises(FloraError):
            await outputs_module.save(client, "run_abc", RunOutput(output_id="output_1", type="imageUrl",
                                                                   url="https://cdn.test/a.png"), tmp_path)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


# --- 3. keys in errors and logs --------------------------------------------------------------------------
async def test_an_echoed_key_never_leaves_the_client_in_any_field_or_variant(caplog):
    variants = [KEY, KEY.upper(), KEY.lower(), KEY[:-4], "Bearer " + KEY + "trailing"]

    def serve(request: httpx2.Request) -> httpx2.Response:
        v = variants[int(request.url.params.get("n", "0"))]
        if request.method == "PUT":
            return httpx2.Response(403, json={"error": {"code": v, "message": f"signature {v} bad"}})
        if request.url.path.endswith("/assets/uploads"):
            return httpx2.Response(201, json={"asset_id": "asset_1", "upload_url": "https://store.test/u?n=0"})
        return httpx2.Response(400, json={"error": {"code": f"bad_{v}", "message": v,
                                                    "fields": [{"field": v, "message": f"got {v}"}]}})

    from flora_mcp.models import ListProjectsRequest, UploadRequest

    caplog.set_level(logging.DEBUG)
    async with _flora_stub(serve) as client:
        texts = []
        for n in range(len(variants)):
            with pytest.raises(FloraError) as caught:
                await client._request("GET", "/projects", params={"n": n})
            texts += [str(caught.value), repr(caught.value), caught.value.code]
            texts += [f.field + f.message for f in caught.value.fields]
        with pytest.raises(FloraError) as caught:
            await client.upload_asset(UploadRequest(workspace_id="ws_a", filename="a.png", content_type="image/png",
                                                    size=3), b"abc")
        texts += [str(caught.value), repr(caught.value), caught.value.code]
        del ListProjectsRequest
    everything = "\n".join(texts) + caplog.text
    for v in variants:
        assert KEY.lower()[8:20] not in everything.lower(), everything


async def test_a_malformed_flora_answer_never_prints_the_key_as_input_value(caplog):
    def serve(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json={"workspaces": [{"workspace_id": KEY, "name": KEY}]})

    async with _flora_stub(serve) as client:
        with pytest.raises(FloraError) as caught:
            await client.list_workspaces()
    err = caught.value
    assert KEY not in str(err) and KEY not in repr(err) and "workspace_id" in str(err)
    chain = err.__cause__ or err.__context__
    assert chain is None or KEY not in str(chain)


# --- 4. one user cannot starve the rest ------------------------------------------------------------------
@pytest.mark.slow
async def test_a_bystander_stays_fast_while_another_user_saturates_slow_uploads(monkeypatch):
    """110 uploads from slow URLs by one user; another user's list_workspaces still answers at once."""
    from tests.helpers import running_sandbox

    allow_loopback(monkeypatch)
    with running_sandbox(speed=100) as flora_url:
        shared = FloraClient(None, base_url=flora_url)
        attacker = create_server(settings(), client=shared, api_key_for=lambda ctx: "sk_sandbox_attacker")
        bystander = create_server(settings(), client=shared, api_key_for=lambda ctx: "sk_sandbox_bystander")
        async with origin(hold=True) as slow, Client(attacker) as a, Client(bystander) as b:
            workspace_id, _ = await first_ids(a)
            await first_ids(b)

            async def upload(i: int) -> None:
                await a.call_tool("upload_asset", {"url": f"http://127.0.0.1:{slow.port}/{i}.png",
                                                   "workspace_id": workspace_id})

            async with anyio.create_task_group() as tg:
                for i in range(110):
                    tg.start_soon(upload, i)
                with anyio.fail_after(5):
                    while slow.hits < 4:
                        await anyio.sleep(0.02)
                await anyio.sleep(0.3)
                started = time.monotonic()
                with anyio.move_on_after(10):
                    result = await b.call_tool("list_workspaces", {})
                took = time.monotonic() - started
                in_flight = slow.hits
                slow.release.set()
            assert not result.is_error and took < 1.0, took
            assert in_flight <= 8, in_flight  # one user's URL fetches are capped, not 110 connections
        await shared.aclose()


async def test_one_users_concurrent_flora_requests_are_capped():
    active: dict[str, int] = {}
    peak: dict[str, int] = {}

    async def serve(request: httpx2.Request) -> httpx2.Response:
        who = request.headers["authorization"]
        active[who] = active.get(who, 0) + 1
        peak[who] = max(peak.get(who, 0), active[who])
        await anyio.sleep(0.05 if "greedy" in who else 0)
        active[who] -= 1
        return httpx2.Response(200, json={"workspaces": []})

    async with FloraClient(None, base_url="https://flora.test/api/v1",
                           transport=httpx2.MockTransport(serve)) as shared:
        greedy, polite = shared.with_api_key("sk_live_greedy"), shared.with_api_key("sk_live_polite")
        async with anyio.create_task_group() as tg:
            for _ in range(60):
                tg.start_soon(greedy.list_workspaces)
            await anyio.sleep(0.01)
            started = time.monotonic()
            await polite.list_workspaces()
            polite_took = time.monotonic() - started
    assert peak["Bearer sk_live_greedy"] <= 8
    assert polite_took < 0.05


# --- 5. memory ------------------------------------------------------------------------------------------
async def test_upload_from_url_streams_instead_of_holding_the_file(monkeypatch):
    import tracemalloc

    size = 8 * 2**20
    received = {"bytes": 0}

    async def flora(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/assets/uploads"):
            return httpx2.Response(201, json={"asset_id": "asset_1", "upload_url": "https://store.test/put"})
        if request.method == "PUT":
            async for chunk in request.stream:
                received["bytes"] += len(chunk)
            return httpx2.Response(200)
        if request.url.path.endswith("/complete"):
            return httpx2.Response(200, json={"asset_id": "asset_1", "status": "ready", "size": received["bytes"]})
        if request.url.path.endswith("/workspaces"):
            return httpx2.Response(200, json={"workspaces": [{"workspace_id": "ws_a", "name": "A"}]})
        return httpx2.Response(404)

    class Big(httpx2.AsyncByteStream):
        async def __aiter__(self):
            for _ in range(size // 65536):
                yield b"\0" * 65536

    async def media(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, stream=Big(), headers={"content-type": "image/png"})

    class Streaming(httpx2.AsyncBaseTransport):  # MockTransport would read the whole request body first
        def __init__(self, handler) -> None:
            self.handler = handler

        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            return await self.handler(request)

    monkeypatch.setattr(urlfetch, "user_transport", lambda: Streaming(media))
    client = FloraClient(None, base_url="https://flora.test/api/v1", transport=Streaming(flora))
    server = create_server(settings(), client=client, api_key_for=lambda ctx: KEY)
    async with Client(server) as mcp:
        tracemalloc.start()
        try:
            result = await mcp.call_tool("upload_asset", {"url": "https://media.test/big.png", "workspace_id": "ws_a"})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert not result.is_error, text_of(result)
    assert received["bytes"] == size
    assert peak < size / 2, peak


# --- 6. unauthenticated pressure ---------------------------------------------------------------------------
class _CountingVerifier:
    def __init__(self, delay: float = 0.05) -> None:
        self.calls = 0
        self.delay = delay

    def __call__(self, key: str):
        verifier = self

        class View:
            async def list_workspaces(self):
                verifier.calls += 1
                await anyio.sleep(verifier.delay)
                if not key.startswith("sk_good"):
                    from flora_mcp.errors import AuthenticationError

                    raise AuthenticationError("Invalid API key", status=401)
                return {}

        return View()


async def test_a_flood_of_one_bad_key_costs_one_flora_call():
    from flora_mcp.ledger import open_ledger
    from flora_mcp.transports.keygate import KeyGate

    verifier = _CountingVerifier()
    gate = KeyGate(settings(rate_limit=0), verifier, open_ledger("memory:").shared)
    statuses: list[int] = []

    async def knock() -> None:
        denial = await gate.check("sk_live_wrong", "203.0.113.7")
        statuses.append(denial.status_code if denial else 200)

    async with anyio.create_task_group() as tg:
        for _ in range(200):
            tg.start_soon(knock)
    assert set(statuses) == {401} and verifier.calls == 1


@pytest.mark.slow
async def test_many_bad_keys_from_one_address_are_slowed_not_locked_out():
    """Issue 22: an address is shared (Claude's egress, an office NAT), so junk from it slows its new keys'
    checks to one at a time instead of refusing them: a valid key from it still gets in."""
    from flora_mcp.ledger import open_ledger
    from flora_mcp.transports import keygate

    verifier = _CountingVerifier(delay=0)
    gate = keygate.KeyGate(settings(rate_limit=0), verifier, open_ledger("memory:").shared)
    statuses = [(await gate.check(f"sk_live_wrong_{i}", "203.0.113.7")).status_code for i in range(40)]
    assert set(statuses) == {401} and gate._slowed("203.0.113.7") and not gate._slowed("198.51.100.2")
    assert await gate.check("sk_good_key", "203.0.113.7") is None


def test_half_sent_headers_do_not_hold_a_connection():
    import threading

    import uvicorn

    from flora_mcp.transports.hardening import uvicorn_config
    from tests.helpers import free_port

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    port = free_port()
    config = uvicorn_config(app, "127.0.0.1", port, header_timeout=0.5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            started = time.monotonic()
            assert sock.recv(100) == b""  # the server hangs up
            assert time.monotonic() - started < 3
    finally:
        server.should_exit = True
        thread.join(10)


# --- 9. Retry-After ---------------------------------------------------------------------------------------
async def test_retry_after_is_honoured_within_the_budget_and_named_beyond_it(monkeypatch):
    import flora_mcp.client as client_module

    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(client_module.anyio, "sleep", fake_sleep)
    answers = iter([httpx2.Response(429, headers={"Retry-After": "12"}), httpx2.Response(200, json={"workspaces": []})])
    async with _flora_stub(lambda r: next(answers)) as client:
        await client.list_workspaces()
    assert slept == [12.0]

    slept.clear()
    async with _flora_stub(lambda r: httpx2.Response(429, headers={"Retry-After": "120"})) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.list_workspaces()
    assert slept == []  # no point waiting 8 s when FLORA asked for 120
    assert "120 s" in str(caught.value) and "UTC" in str(caught.value)


# --- 7. SSE sessions belong to the key that opened them ------------------------------------------------------
@pytest.mark.slow
def test_another_key_cannot_post_into_someone_elses_sse_session():
    from tests.helpers import hosted

    owner, intruder = "sk_sandbox_owner", "sk_sandbox_intruder"
    message = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    with hosted("--sandbox", FLORA_RATE_LIMIT="0") as (base, _), httpx2.Client(timeout=10) as http, http.stream(
            "GET", f"{base}/sse", headers={"Authorization": f"Bearer {owner}"}) as stream:
        lines = stream.iter_lines()  # kept alive: a closed iterator would close the stream
        endpoint = next(line for line in lines if line.startswith("data:") and "session_id=" in line)
        endpoint = endpoint.split(":", 1)[1].strip()
        theirs = http.post(base + endpoint, json=message, headers={"Authorization": f"Bearer {intruder}"})
        mine = http.post(base + endpoint, json=message, headers={"Authorization": f"Bearer {owner}"})
    assert theirs.status_code in (403, 404), theirs.status_code
    assert mine.status_code == 202
