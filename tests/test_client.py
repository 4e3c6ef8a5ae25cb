"""The FLORA client against the sandbox: every endpoint, every error code, retries and idempotency."""

from __future__ import annotations

import io
import logging
import wave

import httpx2
import pytest
from PIL import Image

from flora_mcp.client import AcceptedRunLostError, FloraClient, _error_from_response
from flora_mcp.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    FloraConnectionError,
    FloraError,
    IdempotencyConflictError,
    InsufficientCreditsError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from flora_mcp.models import CreateProjectRequest, GenerateRequest, ListProjectsRequest
from flora_mcp.retry import RetryPolicy, parse_retry_after
from flora_mcp.sandbox import SANDBOX_API_KEY, Sandbox
from tests.helpers import flora_ids

FAST = RetryPolicy(max_retries=3, base_delay=0.001, max_delay=0.01, max_total=5)


def _request(ws: str, prj: str, **kw) -> GenerateRequest:
    return GenerateRequest(**{"type": "image", "prompt": "a red fox in snow", "workspace_id": ws, "project_id": prj} | kw)


async def test_workspaces_and_paginated_projects(flora):
    workspaces = (await flora.list_workspaces()).workspaces
    assert [w.name for w in workspaces] == ["FLORA Sandbox Studio", "Client Work"]
    assert all(w.workspace_id.startswith("ws_") for w in workspaces)
    ws = workspaces[0].workspace_id
    seen, cursor = [], None
    while True:
        page = await flora.list_projects(ListProjectsRequest(workspace_id=ws, limit=7, cursor=cursor))
        seen += page.projects
        cursor = page.meta.next_cursor
        if cursor is None:
            break
    assert len(seen) == 25 == page.meta.total_estimate
    assert len({p.project_id for p in seen}) == 25
    modified = [p.last_modified for p in seen]
    assert modified == sorted(modified, reverse=True)  # most recent activity first
    found = await flora.list_projects(ListProjectsRequest(workspace_id=ws, query="mood"))
    assert [p.name for p in found.projects] == ["Moodboard"]


async def test_create_project_then_list_it(flora):
    ws, _ = await flora_ids(flora)
    project = await flora.create_project(CreateProjectRequest(workspace_id=ws, name="Agent made this"))
    assert project.project_id.startswith("prj_") and project.workspace_id == ws
    page = await flora.list_projects(ListProjectsRequest(workspace_id=ws, query="agent made"))
    assert [p.project_id for p in page.projects] == [project.project_id]


async def test_models_filter_by_type(flora):
    everything = (await flora.list_models()).models
    videos = (await flora.list_models("video")).models
    assert {m.type for m in everything} == {"image", "video", "audio", "text"}
    assert videos and all(m.type == "video" for m in videos)
    flux = next(m for m in everything if m.model_id == "t2i-flux-2-pro")
    assert flux.name == "FLUX.2 Pro" and flux.estimated_credits > 0
    aspect = next(p for p in flux.params if p.name == "aspect_ratio")
    assert "16:9" in [o.value for o in aspect.options]


async def test_run_moves_from_pending_to_completed_with_real_png(flora, sandbox, clock):
    ws, prj = await flora_ids(flora)
    started = await flora.start_generation(_request(ws, prj, model="t2i-flux-2-pro", params={"aspect_ratio": "16:9"}))
    assert started.run_id.startswith("run_") and started.estimated_seconds == 8
    assert (await flora.get_run(started.run_id)).status == "pending"
    clock.advance(0.5)
    running = await flora.get_run(started.run_id)
    assert running.status == "running" and 0 < running.progress < 100
    clock.advance(5)
    done = await flora.get_run(started.run_id)
    assert done.status == "completed" and done.progress == 100 and done.charged_cost > 0
    assert done.completed_at >= done.started_at >= done.created_at
    async with flora.stream_output(done.outputs[0].url) as response:
        data = await response.aread()
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.size == (1024, 576)


async def test_audio_run_serves_a_playable_wav_and_text_run_serves_text(flora, clock):
    ws, prj = await flora_ids(flora)
    audio = await flora.start_generation(_request(ws, prj, type="audio", prompt="a calm hello"))
    text = await flora.start_generation(_request(ws, prj, type="text", prompt="write a haiku about mugs"))
    clock.advance(60)
    audio_run, text_run = await flora.get_run(audio.run_id), await flora.get_run(text.run_id)
    async with flora.stream_output(audio_run.outputs[0].url) as response:
        with wave.open(io.BytesIO(await response.aread())) as w:
            assert w.getnframes() > 1000 and w.getframerate() == 22050
    assert text_run.outputs[0].type == "text"
    async with flora.stream_output(text_run.outputs[0].url) as response:
        assert "haiku" in (await response.aread()).decode()


async def test_same_prompt_different_seed_gives_different_image(flora, clock):
    ws, prj = await flora_ids(flora)
    a = await flora.start_generation(_request(ws, prj, model="t2i-flux-2-schnell", params={"seed": 1}))
    b = await flora.start_generation(_request(ws, prj, model="t2i-flux-2-schnell", params={"seed": 2}))
    clock.advance(60)
    images = []
    for run_id in (a.run_id, b.run_id):
        run = await flora.get_run(run_id)
        async with flora.stream_output(run.outputs[0].url) as response:
            images.append(await response.aread())
    assert images[0] != images[1]


# --- errors --------------------------------------------------------------------------------------
async def test_missing_key_is_a_configuration_error_before_any_request(sandbox):
    async with sandbox.client(api_key=None) as client:
        with pytest.raises(ConfigurationError) as info:
            await client.list_workspaces()
    assert "FLORA_API_KEY" in str(info.value) and "--sandbox" in str(info.value)
    assert sandbox.state.request_log == []


async def test_invalid_key_maps_to_authentication_error_with_hint(sandbox):
    async with sandbox.client(api_key="sk_live_not_a_real_key_123") as client:
        with pytest.raises(AuthenticationError) as info:
            await client.list_workspaces()
    err = info.value
    assert err.status == 401 and err.code == "invalid_api_key"
    assert "FLORA_API_KEY" in str(err)
    assert "sk_live_not_a_real_key_123" not in str(err) + repr(err) + repr(client)


async def test_validation_error_carries_fields(flora):
    ws, prj = await flora_ids(flora)
    with pytest.raises(BadRequestError) as info:
        await flora.start_generation(_request(ws, prj, model="no-such-model"))
    assert info.value.status == 400 and info.value.code == "input_validation_error"
    assert [f.field for f in info.value.fields] == ["model"]


async def test_unknown_fields_are_refused_by_the_sandbox(sandbox):
    http = httpx2.AsyncClient(transport=sandbox.transport(), base_url=sandbox.base_url)
    headers = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}
    r = await http.post("/generate", json={"type": "image", "prompt": "x", "workspace_id": "ws_1",
                                           "project_id": "prj_1", "colour": "red"}, headers=headers)
    assert r.status_code == 400
    assert {"field": "colour", "message": "Unrecognized key"} in r.json()["error"]["fields"]
    r = await http.post("/generate", content=b"{not json", headers=headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = await http.post("/generate", json={}, headers=headers)
    assert r.json()["error"]["message"].startswith("type: Required")
    await http.aclose()


async def test_not_found_insufficient_credits_and_idempotency_duplicate(flora, sandbox):
    with pytest.raises(NotFoundError) as info:
        await flora.get_run("run_doesnotexist")
    assert "start_generation" in str(info.value)
    ws, prj = await flora_ids(flora)
    await flora.start_generation(_request(ws, prj), idempotency_key="key-1")
    with pytest.raises(IdempotencyConflictError) as dup:
        await flora.start_generation(_request(ws, prj), idempotency_key="key-1")
    assert dup.value.status == 409 and not isinstance(dup.value, AcceptedRunLostError)
    for account in sandbox.state.accounts.values():
        account.credits = 1
    with pytest.raises(InsufficientCreditsError) as broke:
        await flora.start_generation(_request(ws, prj))
    assert broke.value.status == 402 and "credits" in str(broke.value)


@pytest.mark.parametrize(
    ("status", "code", "cls", "words"),
    [
        (400, "invalid_json", BadRequestError, "Fix"),
        (401, "unauthorized", AuthenticationError, "FLORA_API_KEY"),
        (402, "insufficient_credits", InsufficientCreditsError, "credits"),
        (403, "forbidden", PermissionDeniedError, "list_workspaces"),
        (404, "not_found", NotFoundError, "Check the ID"),
        (409, "idempotency_duplicate", IdempotencyConflictError, "idempotency_key"),
        (429, "rate_limited", RateLimitError, "wait"),
        (500, "unknown_error", ServerError, "try again"),
    ],
)
def test_every_contract_error_code_maps_to_a_typed_error_with_advice(status, code, cls, words):
    response = httpx2.Response(status, json={"error": {"code": code, "message": "FLORA says no",
                                                      "fields": [{"field": "prompt", "message": "Required"}]}},
                               headers={"Retry-After": "7"})
    err = _error_from_response(response)
    assert type(err) is cls and err.code == code and err.status == status
    assert "FLORA says no" in str(err) and "prompt: Required" in str(err) and words in str(err)
    assert err.retry_after == 7


def test_retry_after_parses_seconds_and_http_dates():
    assert parse_retry_after("3") == 3
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert parse_retry_after("soon") is None


# --- retries and idempotency ---------------------------------------------------------------------
async def test_server_errors_are_retried_and_charge_once(sandbox):
    async with sandbox.client(retry=FAST) as client:
        ws, prj = await flora_ids(client)
        sandbox.faults.server_errors = 2
        run = await client.start_generation(_request(ws, prj))
    assert sandbox.charged_runs() == [run.run_id]


async def test_dropped_connection_after_accept_never_charges_twice(sandbox):
    """The first POST is processed but its answer is lost: the retry reuses the key, gets 409,
    and the client reports an accepted run, not a failure and not a second run."""
    async with sandbox.client(retry=FAST) as client:
        ws, prj = await flora_ids(client)
        sandbox.faults.drop_after_processing = 1
        with pytest.raises(AcceptedRunLostError) as info:
            await client.start_generation(_request(ws, prj))
    assert len(sandbox.charged_runs()) == 1
    assert "not twice" in str(info.value) and info.value.idempotency_key.startswith("flora-mcp-")


async def test_flaky_network_many_starts_exactly_one_charge_each(sandbox):
    async with sandbox.client(retry=FAST) as client:
        ws, prj = await flora_ids(client)
        outcomes = []
        for i in range(6):
            sandbox.faults.server_errors = i % 2
            sandbox.faults.drop_after_processing = 1 if i % 3 == 0 else 0
            try:
                outcomes.append((await client.start_generation(_request(ws, prj, prompt=f"fox {i}"))).run_id)
            except AcceptedRunLostError:
                outcomes.append("accepted")
    assert len(sandbox.charged_runs()) == 6  # one per logical start, never more


async def test_rate_limit_honours_retry_after_then_gives_up_with_the_wait(sandbox):
    sandbox.faults.rate_limit = 1
    async with sandbox.client(retry=RetryPolicy(max_retries=1, base_delay=0.001, max_delay=0.01)) as client:
        await client.list_models()
        with pytest.raises(RateLimitError) as info:
            await client.list_models()
    assert info.value.retry_after and info.value.retry_after >= 1
    # FLORA's wait is longer than the call's 30 s budget: no early retry, an answer saying when to return.
    assert sum(1 for _, _, path in sandbox.state.request_log if path == "/models") == 2
    assert "try again after" in str(info.value)


async def test_connection_errors_are_retried_then_reported():
    calls = 0

    def refuse(request: httpx2.Request) -> httpx2.Response:
        nonlocal calls
        calls += 1
        raise httpx2.ConnectError("refused", request=request)

    client = FloraClient("sk_live_secret_value_42", base_url="http://flora.invalid/api/v1",
                         transport=httpx2.MockTransport(refuse), retry=FAST)
    with pytest.raises(FloraConnectionError) as info:
        await client.list_workspaces()
    assert calls == 4
    assert "sk_live_secret_value_42" not in str(info.value) + repr(info.value)


async def test_key_never_reaches_logs_or_media_hosts(caplog):
    seen_headers = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen_headers.append((request.url.host, request.headers.get("authorization")))
        if request.url.host == "media.example":
            return httpx2.Response(200, content=b"bytes")
        return httpx2.Response(503, json={"error": {"code": "unknown_error", "message": "down"}})

    caplog.set_level(logging.DEBUG)
    client = FloraClient("sk_live_topsecret_1", base_url="https://flora.example/api/v1",
                         transport=httpx2.MockTransport(handler), retry=FAST)
    with pytest.raises(ServerError):
        await client.list_workspaces()
    async with client.stream_output("https://media.example/out.png") as response:
        await response.aread()
    assert ("media.example", None) in seen_headers  # no key sent to a third-party host
    assert "sk_live_topsecret_1" not in caplog.text
    with pytest.raises(FloraError) as info:
        async with client.stream_output("file:///etc/passwd"):
            pass
    assert "non-http" in str(info.value)


@pytest.mark.slow
async def test_client_over_a_real_loopback_socket(tmp_path):
    """Same client code, real TCP: the sandbox under uvicorn on an ephemeral port."""
    from tests.helpers import running_sandbox

    with running_sandbox(speed=200) as base_url:
        async with FloraClient(SANDBOX_API_KEY, base_url=base_url, retry=FAST) as client:
            ws, prj = await flora_ids(client)
            run = await client.start_generation(_request(ws, prj, model="t2i-flux-2-schnell"))
            import anyio

            for _ in range(100):
                state = await client.get_run(run.run_id)
                if state.finished:
                    break
                await anyio.sleep(0.05)
            assert state.status == "completed"
            async with client.stream_output(state.outputs[0].url) as response:
                assert (await response.aread())[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
async def test_dropped_connection_over_a_real_socket_is_retried_safely():
    from tests.helpers import running_sandbox

    with running_sandbox(speed=200) as base_url:
        async with FloraClient(SANDBOX_API_KEY, base_url=base_url, retry=FAST) as client:
            ws, prj = await flora_ids(client)
            admin = httpx2.Client(base_url=base_url.removesuffix("/api/v1"))
            admin.post("/_sandbox", json={"faults": {"drop_after_processing": 1}})
            with pytest.raises(AcceptedRunLostError):
                await client.start_generation(_request(ws, prj))
            charges = admin.get("/_sandbox").json()["charges"]
            admin.close()
    assert len(charges) == 1


async def test_each_in_process_sandbox_keeps_its_own_runs():
    a, b = Sandbox(), Sandbox()
    async with a.client() as client:
        ws, prj = await flora_ids(client)
        run = await client.start_generation(_request(ws, prj))
    assert a.charged_runs() == [run.run_id]
    assert b.charged_runs() == [] and b.state.request_log == []


async def test_user_supplied_urls_are_not_followed_through_redirects():
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.host == "public.example":
            return httpx2.Response(302, headers={"Location": "http://10.0.0.5/secret"})
        return httpx2.Response(200, content=b"internal")

    client = FloraClient("sk_live_k", base_url="https://flora.example/api/v1", transport=httpx2.MockTransport(handler))
    with pytest.raises(FloraError) as info:
        async with client.stream_output("https://public.example/a.png", follow_redirects=False):
            pass
    assert "HTTP 302" in str(info.value)
    async with client.stream_output("https://public.example/a.png") as response:  # FLORA's own outputs may redirect
        assert await response.aread() == b"internal"
