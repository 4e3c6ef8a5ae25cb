"""/api/v1/feedback (recordFeedback): validated as FLORA's spec says, kept in the state's feedback list."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .api_base import ApiRoutes
from .state import Account
from .wire import json_body, validation_error

FEEDBACK_KINDS = ("feature_request", "bug", "technique_request", "missing_capability")
_FIELDS = {"kind", "summary", "detail", "attempted_tools", "workspace_id", "project_id", "run_id"}


class FeedbackRoutes(ApiRoutes):
    async def record_feedback(self, request: Request, account: Account) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        problems = [{"field": k, "message": "Unrecognized key"} for k in body if k not in _FIELDS]
        if body.get("kind") not in FEEDBACK_KINDS:
            problems.append({"field": "kind", "message": f"Expected one of {', '.join(FEEDBACK_KINDS)}"})
        for key in ("summary", "detail"):
            if not isinstance(body.get(key), str) or not body[key]:
                problems.append({"field": key, "message": "Required"})
        tools = body.get("attempted_tools")
        if tools is not None and not (isinstance(tools, list) and all(isinstance(t, str) for t in tools)):
            problems.append({"field": "attempted_tools", "message": "Expected an array of strings"})
        for key, prefix in (("workspace_id", "ws_"), ("project_id", "prj_"), ("run_id", "run_")):
            value = body.get(key)
            if value is not None and not (isinstance(value, str) and re.fullmatch(rf"{prefix}\S+", value)):
                problems.append({"field": key, "message": f"Expected {prefix}…"})
        if problems:
            return validation_error(problems)
        if refused := self._spent_key(request, account):
            return refused
        recorded = {"feedback_id": self.state.new_id("fb", account.key_fingerprint),
                    "received_at": int(self.state.clock())}
        self.state.feedback.append({**body, **recorded, "account": account.key_fingerprint})
        return JSONResponse(recorded, status_code=201)
