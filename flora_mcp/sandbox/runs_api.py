"""/api/v1 models and runs: the catalogue, generations, prebuilt actions and techniques (done for real, in
a worker thread), and a run's status."""

from __future__ import annotations

from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .actions import ACTION_SECONDS, ACTIONS, TECHNIQUE_COST, TECHNIQUES, ActionInputError, run_action
from .api_base import ApiRoutes
from .catalog import MODELS, MODELS_BY_ID
from .state import Account
from .webhooks import callback_problem, schedule
from .wire import TYPES, error, json_body, validation_error

_GENERATE_FIELDS = ("type", "prompt", "workspace_id", "project_id", "model", "params", "callback_url")


class RunRoutes(ApiRoutes):
    """The model catalogue, starting runs (generations, actions, techniques) and reading them."""

    def list_models(self, request: Request, account: Account) -> Response:
        type_ = request.query_params.get("type")
        if type_ and type_ not in TYPES:
            return validation_error([{"field": "type", "message": "Invalid enum value. Expected " + " | ".join(TYPES)}])
        return JSONResponse({"models": [m for m in MODELS if not type_ or m["type"] == type_]})

    async def generate(self, request: Request, account: Account) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        problems = self._ids_problems(body, _GENERATE_FIELDS, ("type", "prompt", "workspace_id", "project_id"))
        if "type" in body and body["type"] not in TYPES:
            problems.append({"field": "type", "message": "Invalid enum value. Expected " + " | ".join(TYPES)})
        if "prompt" in body and (not isinstance(body["prompt"], str) or not body["prompt"]):
            problems.append({"field": "prompt", "message": "String must contain at least 1 character(s)"})
        model = body.get("model")
        if model is not None and not isinstance(model, str):
            problems.append({"field": "model", "message": "Expected string"})
        elif model is not None and model not in MODELS_BY_ID:
            problems.append({"field": "model", "message": "Unknown model endpoint ID"})
        elif model is not None and body.get("type") in TYPES and MODELS_BY_ID[model]["type"] != body["type"]:
            problems.append({"field": "model", "message": f"Model is not a {body['type']} model"})
        if "params" in body and not isinstance(body["params"], dict):
            problems.append({"field": "params", "message": "Expected object"})
        if "callback_url" in body and (problem := callback_problem(body["callback_url"])):
            problems.append({"field": "callback_url", "message": problem})
        if problems:
            return validation_error(problems)
        if denied := self._owned(account, body["workspace_id"], body["project_id"]):
            return denied
        if account.credits is not None and account.credits < self.state.estimated_cost(body):
            return error(402, "insufficient_credits", "Insufficient credits")
        if replay := self._spent_key(request, account):
            return replay
        run = self.state.start_run(account, body)
        self._hook(run, body)
        return JSONResponse(
            {
                "run_id": run.run_id,
                "type": "generation",
                "model": {"model_id": run.model_id},
                "estimated_seconds": run.estimated_seconds,
                "charged_cost": 0,
                "poll_url": f"{self.state.public_base_url}/api/v1/runs/{run.run_id}",
                "project_id": run.project_id,
            },
            status_code=201,
        )

    def get_run(self, request: Request, account: Account) -> Response:
        run = self.state.runs.get(request.path_params["run_id"])
        if run is None or run.account != account.key_fingerprint:
            return error(404, "not_found", "Run not found")
        return JSONResponse(self.state.view_run(run))

    async def action_run(self, request: Request, account: Account) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        problems = self._ids_problems(body, ("action_id", "workspace_id", "project_id", "inputs", "params"),
                                 ("action_id", "workspace_id", "project_id", "inputs"))
        inputs = body.get("inputs")
        if "inputs" in body and (not isinstance(inputs, list) or not inputs):
            problems.append({"field": "inputs", "message": "Array must contain at least 1 element(s)"})
        for i, item in enumerate(inputs if isinstance(inputs, list) else []):
            if not isinstance(item, dict) or item.get("type") not in TYPES:
                problems.append({"field": f"inputs.{i}.type", "message": "Invalid enum value"})
            elif extra := [k for k in item if k not in ("type", "url", "text", "name")]:
                problems.append({"field": f"inputs.{i}.{extra[0]}", "message": "Unrecognized key"})
        if problems:
            return validation_error(problems)
        if body["action_id"] not in ACTIONS:
            return validation_error([{"field": "action_id", "message": "Action not available"}])
        if denied := self._owned(account, body["workspace_id"], body["project_id"]):
            return denied
        images, texts = [], []
        for i, item in enumerate(inputs):
            if item.get("url"):
                try:
                    images.append(self.state.read_url(item["url"], account))
                except LookupError as exc:
                    return validation_error([{"field": f"inputs.{i}.url", "message": str(exc)}])
            elif item.get("text") is not None:
                texts.append(str(item["text"]))
            else:
                return validation_error([{"field": f"inputs.{i}", "message": "Needs url or text"}])
        params = body.get("params") or {}
        try:
            produced = await anyio.to_thread.run_sync(run_action, body["action_id"], images, texts, params)
        except ActionInputError as exc:
            return validation_error([{"field": "inputs/params", "message": str(exc)}])
        if replay := self._spent_key(request, account):
            return replay
        entry = ACTIONS[body["action_id"]][0]
        run = self.state.start_processed_run(account, run_type="action", workspace_id=body["workspace_id"],
                                        project_id=body["project_id"], label=body["action_id"], produced=produced,
                                        seconds=ACTION_SECONDS, cost=entry["charged_cost"])
        return self._started(run, {"action": {"action_id": body["action_id"]}, "project_id": run.project_id})

    async def technique_run(self, request: Request, account: Account) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        problems = self._ids_problems(body, ("technique_id", "workspace_id", "inputs", "callback_url"),
                                      ("technique_id", "workspace_id", "inputs"))
        if "inputs" in body and not isinstance(body["inputs"], dict):
            problems.append({"field": "inputs", "message": "Expected object"})
        if "callback_url" in body and (problem := callback_problem(body["callback_url"])):
            problems.append({"field": "callback_url", "message": problem})
        if problems:
            return validation_error(problems)
        if denied := self._owned(account, body["workspace_id"]):
            return denied
        if body["technique_id"] not in TECHNIQUES:
            return error(404, "not_found", "Technique not found")
        entry, produce = TECHNIQUES[body["technique_id"]]
        values, images = body["inputs"], {}
        for slot in entry["inputs"]:
            value = values.get(slot["name"])
            if value is None:
                if slot["required"]:
                    return validation_error([{"field": f"inputs.{slot['name']}", "message": "Required"}])
                continue
            if slot["type"] == "image":
                url = value.get("url") if isinstance(value, dict) else value
                try:
                    images[slot["name"]] = self.state.read_url(str(url), account)
                except LookupError as exc:
                    return validation_error([{"field": f"inputs.{slot['name']}", "message": str(exc)}])
        try:
            produced = await anyio.to_thread.run_sync(produce, values, images)
        except ActionInputError as exc:
            return validation_error([{"field": "inputs", "message": str(exc)}])
        if replay := self._spent_key(request, account):
            return replay
        run = self.state.start_processed_run(account, run_type="technique", workspace_id=body["workspace_id"], project_id="",
                                        label=entry["name"], produced=produced, seconds=entry["estimated_seconds"],
                                        cost=TECHNIQUE_COST)
        self._hook(run, body)
        return self._started(run, {"technique": {"technique_id": entry["technique_id"], "name": entry["name"]}})

    def _hook(self, run: Any, body: dict[str, Any]) -> None:
        """A run started with callback_url: its webhook is delivered when it settles."""
        if body.get("callback_url"):
            run.callback_url = body["callback_url"]
            schedule(self.state, run)

    def list_actions(self, request: Request, account: Account) -> Response:
        return JSONResponse({"actions": [entry for entry, _ in ACTIONS.values()]})

    def list_techniques(self, request: Request, account: Account) -> Response:
        if denied := self._owned(account, request.query_params.get("workspace_id", "")):
            return denied
        return JSONResponse({"techniques": [entry for entry, _ in TECHNIQUES.values()]})
