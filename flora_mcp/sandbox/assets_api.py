"""/api/v1 assets: signed uploads (reserve, then complete once the bytes are PUT to host.py's upload URL)
and copying a URL the sandbox served into an asset."""

from __future__ import annotations

import mimetypes
import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .api_base import ApiRoutes
from .host import MAX_UPLOAD
from .state import Account
from .wire import TYPES, error, json_body, validation_error

_ASSET_FIELDS = ("source", "workspace_id", "folder", "content_type", "file_name")


class AssetRoutes(ApiRoutes):
    """Assets: signed uploads and copies of URLs the sandbox served."""

    async def reserve_upload(self, request: Request, account: Account) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        fields = ("workspace_id", "filename", "content_type", "size")
        problems = self._ids_problems(body, fields, fields)
        if "size" in body and not (isinstance(body["size"], int) and 0 < body["size"] <= MAX_UPLOAD):
            problems.append({"field": "size", "message": f"Must be 1-{MAX_UPLOAD} bytes"})
        if problems:
            return validation_error(problems)
        if refused := self._owned(account, body["workspace_id"]) or self._spent_key(request, account):
            return refused
        asset_id = self.state.new_id("asset", account.key_fingerprint)
        self.state.assets[asset_id] = {"account": account.key_fingerprint, "filename": body["filename"],
                                  "content_type": body["content_type"], "size": body["size"], "data": None,
                                  "status": "pending", "signature": self.state.new_id("sig", asset_id)}
        signature = self.state.assets[asset_id]["signature"]
        return JSONResponse({"asset_id": asset_id, "upload_method": "PUT", "upload_headers": {},
                             "upload_url": f"{self.state.public_base_url}/uploads/{asset_id}?signature={signature}"},
                            status_code=201)

    def complete_upload(self, request: Request, account: Account) -> Response:
        asset_id = request.path_params["asset_id"]
        asset = self.state.assets.get(asset_id)
        if asset is None or asset["account"] != account.key_fingerprint:
            return error(404, "not_found", "Asset not found")
        if asset["data"] is None or len(asset["data"]) != asset["size"]:
            return validation_error([{"field": "upload", "message": "Bytes missing or not the reserved size"}])
        asset["status"] = "ready"
        kind = asset["content_type"].split("/")[0]
        safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", asset["filename"])
        asset["url"] = f"{self.state.public_base_url}/media/assets/{asset_id}/{safe_name}"
        return JSONResponse({"asset_id": asset_id, "status": "ready", "content_type": asset["content_type"],
                             "size": asset["size"], "type": kind if kind in TYPES else None,
                             "url": f"{self.state.public_base_url}/media/assets/{asset_id}/{safe_name}"})

    async def asset_from_url(self, request: Request, account: Account) -> Response:
        """POST /assets with a source URL (FLORA copies it from an allowlisted host; here: URLs it served)."""
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        problems = self._ids_problems(body, _ASSET_FIELDS, ("source", "workspace_id"))
        problems += [{"field": k, "message": "Expected string"} for k in _ASSET_FIELDS
                     if k in body and not isinstance(body[k], str)]
        if problems:
            return validation_error(problems)
        if body["source"] == "signed-url":
            return validation_error([{"field": "source", "message": "The sandbox takes signed uploads through "
                                       "POST /assets/uploads; here, pass a URL it served"}])
        if denied := self._owned(account, body["workspace_id"]):
            return denied
        try:
            data = self.state.read_url(body["source"], account)
        except LookupError as exc:
            return validation_error([{"field": "source", "message": f"Source URL is not allowlisted: {exc}"}])
        if replay := self._spent_key(request, account):
            return replay
        name = body.get("file_name") or body["source"].split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "asset"
        content_type = body.get("content_type") or mimetypes.guess_type(name)[0] or "application/octet-stream"
        asset_id = self.state.new_id("asset", account.key_fingerprint)
        safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        url = f"{self.state.public_base_url}/media/assets/{asset_id}/{safe_name}"
        self.state.assets[asset_id] = {"account": account.key_fingerprint, "filename": name, "content_type": content_type,
                                  "size": len(data), "data": data, "status": "ready", "url": url,
                                  "signature": self.state.new_id("sig", asset_id)}
        return JSONResponse({"asset_id": asset_id, "uploaded_via": "url", "url": url,
                             "workspace_id": body["workspace_id"], "visibility": "workspace", "status": "ready"},
                            status_code=201)
