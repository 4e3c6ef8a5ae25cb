"""list_runs as an agent sees it: a page filtered by the ledger, with totals that follow the filter."""

from __future__ import annotations

import anyio
import pytest

from tests.helpers import call, first_ids


async def test_a_project_filter_shows_that_projects_runs_and_their_totals(make_session, fast_sandbox):
    async with make_session(budget_usd=5.0, wait_seconds=5) as client:
        workspace_id, first = await first_ids(client)
        _, made = await call(client, "create_project", {"workspace_id": workspace_id, "name": "second"})
        second = made["project_id"]
        for project, prompts in ((first, ["a fox at dawn", "a fox at noon"]), (second, ["a heron in fog"])):
            for prompt in prompts:
                _, started = await call(client, "start_generation", {
                    "type": "image", "prompt": prompt, "model": "t2i-flux-2-schnell", "workspace_id": workspace_id,
                    "project_id": project})
                assert started["status"] == "completed"
        await anyio.sleep(0.1)
        _, everything = await call(client, "list_runs")
        _, only_second = await call(client, "list_runs", {"project_id": second})
        _, only_first = await call(client, "list_runs", {"project_id": first, "limit": 1})
    charges = {run_id: usd for _, run_id, usd in fast_sandbox.state.charges}
    assert len(everything["runs"]) == 3 and everything["totals"]["charged_usd"] == pytest.approx(sum(charges.values()))
    [row] = only_second["runs"]
    assert only_second["project_id"] == second and row[-1] == "a heron in fog"  # the prompt's opening words
    assert only_second["totals"]["charged_usd"] == pytest.approx(charges[row[0]])  # this project's, not all
    assert only_second["totals"]["left_usd"] == pytest.approx(5.0 - sum(charges.values()))  # the account's budget
    assert "matching this filter" in only_second["note"]
    assert len(only_first["runs"]) == 1 and only_first["more"] == 1
    assert only_first["runs"][0][-1] == "a fox at noon"  # newest first
