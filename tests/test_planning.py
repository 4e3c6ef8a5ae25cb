"""Numbers an agent can plan with (issue 23): every estimate comes with an upper bound that covers the
charge, says whether it is calibrated, and the agent can hold a limit (max_usd) before anything is sent."""

from __future__ import annotations

import pytest

from tests.helpers import call, first_ids, text_of


async def _ids(client) -> dict:
    workspace_id, project_id = await first_ids(client)
    return {"workspace_id": workspace_id, "project_id": project_id}


def image(ids: dict, prompt: str = "a product shot", model: str = "t2i-flux-2-pro", **extra) -> dict:
    return {"type": "image", "prompt": prompt, "model": model, **ids, **extra}


async def test_an_uncalibrated_estimate_shows_a_bound_that_covers_the_charge(make_session, fast_sandbox):
    async with make_session() as client:
        ids = await _ids(client)
        _, dry = await call(client, "start_generation", image(ids, dry_run=True))
        _, run = await call(client, "start_generation", image(ids))
        _, after = await call(client, "start_generation", image(ids, dry_run=True))
    # Before any charge of this model is known: expected $0.06, plan with $0.09, labelled uncalibrated
    assert dry["estimated_usd"] == 0.06 and dry["estimated_usd_max"] == 0.09 and dry["calibrated"] is False
    assert "not yet calibrated" in dry["estimate_basis"] and "plan with the max" in dry["estimate_basis"]
    assert dry["estimated_credits"] * 0.01 == pytest.approx(dry["estimated_usd"])  # the two figures agree
    # the start's own answer carries the same figures, and the charge is within the bound
    assert run["estimated_usd_max"] == 0.09 and run["calibrated"] is False
    assert run["charged_usd"] == 0.075 <= run["estimated_usd_max"]
    # once a run has settled: calibrated, expected = what FLORA charged, bound a little above
    assert after["calibrated"] is True and after["estimated_usd"] == pytest.approx(0.075)
    assert after["estimated_usd_max"] == pytest.approx(0.0825)
    assert after["estimated_credits"] * 0.01 == pytest.approx(after["estimated_usd"])


async def test_a_4k_estimate_covers_the_4k_charge(make_session):
    async with make_session() as client:
        ids = await _ids(client)
        args = image(ids, model="t2i-imagen-4", params={"resolution": "4K"})
        _, dry = await call(client, "start_generation", args | {"dry_run": True})
        _, run = await call(client, "start_generation", args)
    assert dry["estimated_usd"] < run["charged_usd"] <= dry["estimated_usd_max"], (dry, run)


async def test_max_usd_refuses_before_anything_is_sent(make_session, fast_sandbox):
    async with make_session() as client:
        ids = await _ids(client)
        refused, _ = await call(client, "start_generation", image(ids, max_usd=0.08))
        fast_sandbox.state.charges.clear()
        ok, data = await call(client, "start_generation", image(ids, prompt="another", max_usd=0.10))
    assert refused.is_error
    message = text_of(refused)
    assert "may cost up to $0.09" in message and "max_usd $0.08" in message and "Nothing was started" in message
    assert not ok.is_error and data["charged_usd"] <= 0.10
    assert len(fast_sandbox.state.charges) == 1  # only the second call started anything


async def test_a_batch_dry_run_gives_the_total_and_max_usd_holds_the_batch(make_session, fast_sandbox):
    async with make_session() as client:
        ids = await _ids(client)
        items = [{"type": "image", "prompt": f"product shot {n}", "model": "t2i-flux-2-pro"} for n in range(3)]
        _, dry = await call(client, "start_generations", {"items": items, **ids, "dry_run": True, "max_usd": 0.20})
        refused, _ = await call(client, "start_generations", {"items": items, **ids, "max_usd": 0.20})
        charges_after_refusal = list(fast_sandbox.state.charges)
        cheaper = [i | {"model": "t2i-flux-2-schnell"} for i in items]
        _, plan = await call(client, "start_generations", {"items": cheaper, **ids, "dry_run": True, "max_usd": 0.20})
        _, done = await call(client, "start_generations", {"items": cheaper, **ids, "max_usd": 0.20})
    assert dry["estimated_usd"] == pytest.approx(0.18) and dry["estimated_usd_max"] == pytest.approx(0.27)
    assert dry["within_max_usd"] is False and "max_usd $0.2" in dry["refusal"]
    assert [row["estimated_usd_max"] for row in dry["items"]] == [0.09] * 3
    assert refused.is_error and "up to $0.27" in text_of(refused) and charges_after_refusal == []
    assert plan["within_max_usd"] is True and plan["estimated_usd_max"] <= 0.20
    assert done["started"] == 3 and done["charged_usd"] <= plan["estimated_usd_max"]


async def test_max_usd_without_a_model_cannot_be_held(make_session, fast_sandbox):
    async with make_session() as client:
        ids = await _ids(client)
        refused, _ = await call(client, "start_generation", {"type": "image", "prompt": "x", **ids, "max_usd": 1})
    assert refused.is_error and "no cost estimate without a model" in text_of(refused)
    assert fast_sandbox.state.charges == []


async def test_max_usd_on_an_action_is_checked_against_its_price(make_session, fast_sandbox):
    async with make_session() as client:
        ids = await _ids(client)
        refused, _ = await call(client, "run_action", {
            "action_id": "split-text", "inputs": [{"type": "text", "text": "a,b"}], **ids, "max_usd": 0.001})
    assert refused.is_error and "max_usd $0.001" in text_of(refused) and fast_sandbox.state.charges == []


async def test_get_run_names_the_model_and_prompt_it_knows(make_session):
    async with make_session() as client:
        ids = await _ids(client)
        _, started = await call(client, "start_generation", image(
            ids, prompt="Three product shots of the ceramic mug on oak, soft light", wait_seconds=0))
        _, found = await call(client, "get_run", {"run_id": started["run_id"], "wait_seconds": 5})
    assert found["model"] == "t2i-flux-2-pro"
    assert found["prompt"] == "Three product shots of the ceramic mug o…"
