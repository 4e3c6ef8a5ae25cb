"""An outside review of the merge of issues 21-27: each test is a defect a user, an agent or an attacker
would meet (found by attacking the merged main), kept as a regression test."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.client import Client

from flora_mcp.ledger import open_ledger
from flora_mcp.sandbox import SANDBOX_API_KEY, Sandbox
from flora_mcp.server import create_server
from tests.helpers import first_ids, settings, text_of


def _hosted(sandbox: Sandbox, ledger: Any, **overrides: Any) -> Client:
    """An in-memory session on a hosted-mode server (one user's key) over a shared ledger."""
    client = sandbox.client(SANDBOX_API_KEY)
    return Client(create_server(settings(**overrides), client=client, api_key_for=lambda ctx: SANDBOX_API_KEY,
                                ledger=ledger))


async def _image_args(client: Client) -> dict[str, Any]:
    ws, prj = await first_ids(client)
    return {"type": "image", "prompt": "a review fox", "model": "t2i-flux-2-schnell", "workspace_id": ws,
            "project_id": prj, "wait_seconds": 0}


async def test_a_retry_across_turning_webhooks_on_reuses_the_run_instead_of_paying_again():
    """callback_url is the server's plumbing, not the agent's request: a replica with
    FLORA_WEBHOOK_PUBLIC_URL set and one without (a rolling deploy) must see one identical request."""
    sandbox, ledger = Sandbox(speed=5), open_ledger("memory:")
    async with _hosted(sandbox, ledger) as before:
        args = await _image_args(before)
        first = await before.call_tool("start_generation", args)
    async with _hosted(sandbox, ledger, webhook_public_url="https://mcp.example.com") as after:
        again = await after.call_tool("start_generation", args)
    assert not first.is_error and not again.is_error, text_of(again)
    assert again.structured_content["run_id"] == first.structured_content["run_id"], text_of(again)
    assert len(sandbox.state.charges) == 1


async def test_an_agent_key_retried_across_turning_webhooks_on_is_not_a_conflict():
    sandbox, ledger = Sandbox(speed=5), open_ledger("memory:")
    async with _hosted(sandbox, ledger) as before:
        args = await _image_args(before) | {"idempotency_key": "review-key-0001"}
        first = await before.call_tool("start_generation", args)
    async with _hosted(sandbox, ledger, webhook_public_url="https://mcp.example.com") as after:
        again = await after.call_tool("start_generation", args)
    assert not again.is_error, text_of(again)
    assert again.structured_content["run_id"] == first.structured_content["run_id"]


@pytest.mark.parametrize("run_id", [None, 42, {"id": "run_x"}])
async def test_a_wrong_run_id_names_the_field_without_pydantic_internals(make_session, run_id):
    async with make_session() as client:
        result = await client.call_tool("get_run", {"run_id": run_id})
    text = text_of(result)
    assert result.is_error and text.startswith("run_id"), text
    assert "function-before" not in text and "constrained-" not in text and "[" not in text.split(":")[0], text
