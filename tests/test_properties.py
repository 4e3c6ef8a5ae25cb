"""Properties that must hold for any input, checked with hypothesis."""

from __future__ import annotations

import httpx2
from hypothesis import given, settings
from hypothesis import strategies as st

from flora_mcp._retry import RetryPolicy, parse_retry_after
from flora_mcp.client import _error_from_response
from flora_mcp.models import Model
from flora_mcp.sandbox.catalog import MODELS
from flora_mcp.server.paramcheck import check_params

CATALOG = [Model.model_validate(m) for m in MODELS]
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                           max_leaves=8)


@given(st.sampled_from(CATALOG), st.dictionaries(st.text(max_size=12), json_values, max_size=5))
def test_param_check_never_crashes_and_names_each_problem(model, params):
    for problem in check_params(model, params):
        assert problem.startswith("params.")


@given(st.sampled_from(CATALOG), st.data())
def test_every_declared_value_passes_the_param_check(model, data):
    params = {}
    for spec in model.params:
        if spec.options:
            params[spec.name] = data.draw(st.sampled_from([o.value for o in spec.options]))
        elif spec.type in ("int", "seed") and spec.min is not None and spec.max is not None:
            params[spec.name] = data.draw(st.integers(int(spec.min), int(spec.max)))
        elif spec.type == "float" and spec.min is not None and spec.max is not None:
            params[spec.name] = data.draw(st.floats(spec.min, spec.max))
        elif spec.type == "string":
            params[spec.name] = data.draw(st.text(min_size=1, max_size=20))
    assert check_params(model, params) == []


@given(st.sampled_from([m for m in CATALOG if any(p.max is not None and p.type != "seed" for p in m.params)]),
       st.floats(1.0001, 1e6))
def test_numbers_beyond_the_maximum_are_refused(model, factor):
    spec = next(p for p in model.params if p.max is not None and p.type != "seed")
    value = spec.max * factor + 1 if spec.type == "float" else int(spec.max * factor) + 1
    assert any(f"params.{spec.name}" in p for p in check_params(model, {spec.name: value}))


@given(st.integers(1, 50), st.none() | st.floats(0, 1e6))
def test_backoff_is_bounded_and_retry_after_is_honoured(attempt, retry_after):
    policy = RetryPolicy(max_delay=8.0)
    delay = policy.delay(attempt, retry_after)
    assert delay == retry_after if retry_after is not None else 0 <= delay <= 8.0


@given(st.text())
def test_retry_after_never_raises(value):
    result = parse_retry_after(value)
    assert result is None or result >= 0


@settings(max_examples=50)
@given(st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != ""), st.integers(400, 599))
def test_an_echoed_key_is_always_cut_from_errors(noise, status):
    key = "sk_live_" + "x9" * 10
    body = {"error": {"code": "unknown_error", "message": f"{noise}{key}{noise}",
                      "fields": [{"field": "auth", "message": f"bad {key}"}]}}
    err = _error_from_response(httpx2.Response(status, json=body), secret=key)
    assert key not in str(err) and key not in repr(err)


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.sampled_from(["type", "prompt", "workspace_id", "project_id", "model", "params",
                                        "extra"]), json_values, max_size=7))
def test_the_sandbox_answers_any_body_with_the_contract_never_a_crash(body):
    """Whatever an agent or a bug sends, the sandbox answers 201 or an error envelope, never a 500."""
    import anyio

    from flora_mcp.sandbox import SANDBOX_API_KEY, Sandbox

    async def post() -> httpx2.Response:
        sandbox = Sandbox()
        async with httpx2.AsyncClient(transport=sandbox.transport(), base_url=sandbox.base_url) as http:
            return await http.post("/generate", json=body, headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"})

    response = anyio.run(post)
    assert response.status_code in (201, 400, 404), response.text
    if response.status_code != 201:
        assert set(response.json()["error"]) >= {"code", "message"}


TOOL_ARGS = ["type", "prompt", "workspace_id", "project_id", "model", "params", "wait_seconds", "run_id",
             "action_id", "inputs", "technique_id", "items", "query", "limit", "cursor", "name", "dry_run"]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["list_projects", "create_project", "list_models", "start_generation", "get_run",
                        "start_generations", "run_action", "run_technique", "upload_asset"]),
       st.dictionaries(st.sampled_from(TOOL_ARGS), json_values, max_size=5))
def test_no_arguments_crash_a_tool(tool, arguments):
    """Any arguments get an answer: a result, or an error an agent can act on, never the SDK's crash text."""
    import anyio
    from mcp.client import Client

    from flora_mcp.sandbox import Sandbox
    from flora_mcp.server import create_server
    from tests.conftest import settings as make_settings

    if isinstance(arguments.get("wait_seconds"), int | float):
        arguments["wait_seconds"] = 0

    async def run():
        server = create_server(make_settings(wait_seconds=0), client=Sandbox(speed=1000).client())
        async with Client(server) as client:
            return await client.call_tool(tool, arguments)

    result = anyio.run(run)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert "Error executing tool" not in text, text
