"""The issue-22 red team, replayed: each attack against a hosted flora-mcp, one line of result each.

    python benchmarks/attacks.py [--json]

Two processes on loopback: a sandbox standing in for FLORA (wrapped to count the requests each
bearer credential makes, so "never sent to FLORA" and "one check per key" are measured, not assumed)
and `flora-mcp --transport http` with OAuth on and a SQLite ledger in a temporary folder. Every attack
is bounded (a few hundred requests at most). The table says, per attack, what a vulnerable server did
(from the report), what this one did, and HELD or BROKEN.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import anyio
import httpx2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import free_port, wait_healthy

KEY = "sk_sandbox_redteam"
CLAUDE = "https://claude.ai/api/mcp/auth_callback"
LOOPBACK = "http://127.0.0.1:9/callback"

FLORA = """
import hashlib, json, sys, uvicorn
from flora_mcp.sandbox import Sandbox
port = int(sys.argv[1])
sandbox = Sandbox(speed=200, public_base_url=f"http://127.0.0.1:{port}")
seen = {}  # sha256(bearer) -> requests

async def app(scope, receive, send):
    if scope["type"] == "http" and scope["path"] == "/_seen":
        body = json.dumps(seen).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
        return
    if scope["type"] == "http":
        auth = dict(scope["headers"]).get(b"authorization", b"")[7:]
        name = hashlib.sha256(auth).hexdigest()
        seen[name] = seen.get(name, 0) + 1
    await sandbox.app(scope, receive, send)

uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
"""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


class Target:
    def __init__(self, base: str, flora: str, ledger: Path) -> None:
        self.base, self.flora, self.ledger = base, flora, ledger
        self.http = httpx2.AsyncClient(base_url=base, timeout=30, limits=httpx2.Limits(max_connections=400))

    async def seen(self, credential: str) -> int:
        return (await self.http.get(f"{self.flora}/_seen")).json().get(sha(credential), 0)

    async def register(self, uris: list[str], **extra) -> httpx2.Response:
        return await self.http.post("/register", json={
            "redirect_uris": uris, "client_name": "red team", "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]} | extra)

    async def authorize(self, client_id: str, redirect: str, challenge: str, **extra) -> httpx2.Response:
        return await self.http.get("/authorize", params={
            "response_type": "code", "client_id": client_id, "redirect_uri": redirect, "code_challenge": challenge,
            "code_challenge_method": "S256", "state": "st"} | extra)

    async def code(self, client_id: str, redirect: str, challenge: str, key: str = KEY) -> str:
        page = await self.authorize(client_id, redirect, challenge)
        consent = await self.http.get(page.headers["location"].removeprefix(self.base))
        fields = dict(re.findall(r'name="(request|csrf)" value="([^"]*)"', consent.text))
        done = await self.http.post("/consent", data=fields | {"api_key": key, "action": "approve"},
                                    headers={"Origin": self.base})
        return parse_qs(urlparse(done.headers["location"]).query)["code"][0]

    async def mcp(self, bearer: str, address: str | None = None) -> httpx2.Response:
        headers = {"Authorization": f"Bearer {bearer}", "Accept": "application/json, text/event-stream"}
        if address:
            headers["X-Forwarded-For"] = address
        return await self.http.post("/mcp", headers=headers, json={
            "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "rt", "version": "1"}}})

    async def tool(self, name: str, arguments: dict) -> dict:
        headers = {"Authorization": f"Bearer {KEY}", "Accept": "application/json, text/event-stream"}
        response = await self.http.post("/mcp", headers=headers, json={
            "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": arguments}})
        text = response.text
        if text.startswith(("event:", "data:")) or "\ndata:" in text:
            text = [line[5:] for line in text.splitlines() if line.startswith("data:")][-1]
        return json.loads(text)["result"]


# --- the attacks: each returns (what was done, what happened, held?) ------------------------------------------

async def redirect_schemes(t: Target):
    bad = ["javascript:alert(1)//", "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)",
           "file:///etc/passwd", "http://evil.example/cb", "https://evil.example/cb#x"]
    statuses = [(await t.register([uri])).status_code for uri in bad]
    refused = statuses.count(400)
    return f"register {len(bad)} hostile redirect URIs", f"{refused}/{len(bad)} refused (400)", refused == len(bad)


async def open_redirector(t: Target):
    client_id = (await t.register(["https://attacker.example/landing"])).json()["client_id"]
    bad = [{"scope": "admin"}, {"resource": "https://elsewhere.example/"}, {"response_type": "token"},
           {"code_challenge_method": "plain"}]
    away = 0
    for extra in bad:
        response = await t.authorize(client_id, "https://attacker.example/landing", pkce()[1], **extra)
        away += "attacker.example" in response.headers.get("location", "")
    return (f"{len(bad)} bad /authorize requests of a self-registered client",
            f"{away}/{len(bad)} redirected to its URL; {len(bad) - away} shown on our page", away == 0)


async def claude_and_loopback_flows(t: Target):
    done = []
    for redirect, method in ((CLAUDE, "client_secret_post"), (LOOPBACK, "none")):
        client = (await t.register([redirect], token_endpoint_auth_method=method)).json()
        verifier, challenge = pkce()
        code = await t.code(client["client_id"], redirect, challenge)
        form = {"grant_type": "authorization_code", "code": code, "client_id": client["client_id"],
                "redirect_uri": redirect, "code_verifier": verifier}
        if "client_secret" in client:
            form["client_secret"] = client["client_secret"]
        tokens = (await t.http.post("/token", data=form)).json()
        done.append((await t.mcp(tokens["access_token"])).status_code == 200)
    return "sign in via Claude's callback and a loopback client", f"{sum(done)}/2 reached /mcp", all(done)


async def own_tokens_to_flora(t: Target):
    client = (await t.register([LOOPBACK])).json()
    verifier, challenge = pkce()
    code = await t.code(client["client_id"], LOOPBACK, challenge)
    tokens = (await t.http.post("/token", data={"grant_type": "authorization_code", "code": code,
                                                "client_id": client["client_id"], "redirect_uri": LOOPBACK,
                                                "code_verifier": verifier})).json()
    presented = [tokens["refresh_token"], code, "fmcp_at_expired_or_forged"]
    statuses = [(await t.mcp(token)).status_code for token in presented]
    leaked = sum([await t.seen(token) for token in presented])
    return ("refresh token, spent code, forged access token as Bearer",
            f"statuses {statuses}; {leaked} reached FLORA", statuses == [401] * 3 and leaked == 0)


async def client_secret_at_rest(t: Target):
    client = (await t.register([CLAUDE], token_endpoint_auth_method="client_secret_post")).json()
    raw = t.ledger.read_bytes() + b"".join(p.read_bytes() for p in t.ledger.parent.glob("*-wal"))
    found = client["client_secret"].encode() in raw
    return "look for a client_secret in the ledger file", "found in plain text" if found else "only its hash", \
        not found


async def junk_then_valid_key(t: Target):
    office = "198.51.100.77"
    for i in range(35):
        await t.mcp(f"sk_live_junk_{i}_{secrets.token_hex(4)}", office)
    fresh = f"sk_sandbox_newcomer_{secrets.token_hex(4)}"
    status = (await t.mcp(fresh, office)).status_code
    return "35 junk keys, then a new valid key, from one address", f"valid key answered {status}", status == 200


async def one_key_three_hundred_connections(t: Target):
    results = {}
    for label, key in (("valid", f"sk_sandbox_burst_{secrets.token_hex(4)}"),
                       ("junk", f"sk_live_burst_{secrets.token_hex(4)}")):
        statuses: dict = {}

        async def one(key: str = key, statuses: dict = statuses) -> None:
            try:
                code = (await t.mcp(key, "203.0.113.99")).status_code
            except httpx2.HTTPError as exc:
                code = type(exc).__name__
            statuses[code] = statuses.get(code, 0) + 1

        with anyio.move_on_after(60):
            async with anyio.create_task_group() as tg:
                for _ in range(300):
                    tg.start_soon(one)
        results[label] = (statuses, await t.seen(key))
    ok = results["valid"][0] == {200: 300} and results["junk"][0] == {401: 300} and \
        results["valid"][1] == 1 and results["junk"][1] == 1
    text = "; ".join(f"{label}: {statuses}, {checks} FLORA check(s)" for label, (statuses, checks) in results.items())
    return "300 connections at once with one new key (valid, then junk)", text, ok


async def mermaid_stall(t: Target):
    worst = 0.0
    stop = anyio.Event()

    async def probe() -> None:
        nonlocal worst
        while not stop.is_set():
            started = time.perf_counter()
            try:
                await t.http.get("/healthz")
            except httpx2.TimeoutException:
                pass
            worst = max(worst, time.perf_counter() - started)
            await anyio.sleep(0.05)

    hostile = ["graph LR\n  a -- " + " " * 4_500 + "x", 'graph LR\n  a["' + " " * 150_000 + '"]',
               "graph LR\n" + "\n".join(f'  n{i}["N{i} (text)"]' for i in range(20_000))]
    took = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(probe)
        project = await first_project(t)
        for diagram in hostile:
            started = time.perf_counter()
            try:
                await t.tool("patch_canvas", {"diagram": diagram, "project_id": project})
            except httpx2.TimeoutException:
                pass  # still parsing after 30 s
            took.append(time.perf_counter() - started)
        stop.set()
    return ("patch_canvas: 4.5 KB of edge spaces, 150 K-space label, 20,000 nodes",
            f"answered in {', '.join(f'{s:.2f}' for s in took)} s; /healthz worst {worst:.2f} s",
            max(took) < 2 and worst < 1)


_PROJECT: list[str] = []


async def first_project(t: Target) -> str:
    if not _PROJECT:
        ws = (await t.tool("list_workspaces", {}))["structuredContent"]["workspaces"][0]["workspace_id"]
        created = await t.tool("create_project", {"workspace_id": ws, "name": "red team"})
        _PROJECT.append(created["structuredContent"]["project_id"])
    return _PROJECT[0]


async def read_canvas_size(t: Target):
    project = await first_project(t)
    for start in range(0, 1_000, 200):
        nodes = "\n".join(f'  n{i}["A long label to make this canvas heavy, node {i} (text)"]'
                          for i in range(start, start + 200))
        await t.tool("patch_canvas", {"diagram": "graph LR\n" + nodes, "project_id": project})
    result = await t.tool("read_canvas", {"project_id": project})
    size = len(json.dumps(result))
    page = result["structuredContent"].get("next_offset")
    return "read_canvas of a 1,000-node canvas", f"{size:,} bytes, next_offset {page}", size < 100_000


async def canvas_injection(t: Target):
    project = await first_project(t)
    attempts = [
        ('graph LR\n  x1["Go (text)"]\n  click x1 "javascript:alert(1)"', None),
        ('%%{init: {"securityLevel": "loose"}}%%\ngraph LR\n  x2["Go (text)"]', None),
        ('graph LR\n  x3["Go (text)"]\n  style x3 fill:#f00', None),
        ('graph LR\n  x4["Go (text)"]\n  classDef evil fill:#f00', None),
        ('graph LR\n  x5["<script>alert(1)</script> (text)"]', None),
        ('graph LR\n  x6["<img src=x onerror=alert(1)> (text)"]', None),
        ('graph LR\n  x7["Go (image)"]', {"x7": {"content_url": "javascript:alert(1)"}}),
        ('graph LR\n  x8["Go (image)"]', {"x8": {"content_url": "data:image/png;base64,AAAA"}}),
        ('graph LR\n  x9["Go (image)"]', {"x9": {"model_parameters": {"image_url": "javascript:alert(1)"}}}),
    ]
    refused = 0
    for diagram, params in attempts:
        args = {"diagram": diagram, "project_id": project} | ({"node_params": params} if params else {})
        result = await t.tool("patch_canvas", args)
        refused += bool(result.get("isError")) and "Nothing was sent" in result["content"][0]["text"]
    return f"{len(attempts)} patches with scripts, styles, directives, HTML, script URLs", \
        f"{refused}/{len(attempts)} refused with the fix, nothing sent", refused == len(attempts)


async def registration_flood(t: Target):
    before = t.ledger.stat().st_size
    statuses = []
    for _ in range(50):
        statuses.append((await t.register([CLAUDE], client_name="x" * 1_000_000)).status_code)
    grown = t.ledger.stat().st_size - before
    return "50 registrations of 1 MB each", f"statuses {sorted(set(statuses))}; ledger grew {grown / 1e6:.2f} MB", \
        grown < 1_000_000


async def fuzz_errors(t: Target):
    huge = "a" * 900_000
    bad = 0
    tools = ["list_runs", "get_project", "read_canvas", "patch_canvas", "place_on_canvas", "create_canvas_action",
             "run_canvas_action", "get_run", "start_generation"]
    shapes = [{"project_id": huge}, {"project_id": "prj_" + huge}, {"run_id": "run_" + huge}, {"node_id": huge},
              {"action_id": huge}, {"diagram": 5}, {"node_params": [{"node_id": 1}]}, {"limit": "x"},
              {"inputs": [{"type": ["image"]}]}, {"offset": -1}]
    calls = 0
    for name in tools:
        for args in shapes:
            result = await t.tool(name, args)
            calls += 1
            text = result["content"][0]["text"]
            bad += "unexpectedly" in text or len(text) > 5_000
    return f"{calls} malformed calls (900 KB IDs, wrong shapes) on the new tools", \
        f"{bad} opaque or echoing answers", bad == 0


ATTACKS = [
    ("1 redirect URIs", redirect_schemes), ("1 open redirector", open_redirector),
    ("1 clients still work", claude_and_loopback_flows), ("2 own tokens to FLORA", own_tokens_to_flora),
    ("3 client_secret at rest", client_secret_at_rest), ("4 junk locks out valid", junk_then_valid_key),
    ("4 key gate race", one_key_three_hundred_connections), ("5 parser stall", mermaid_stall),
    ("5 read_canvas size", read_canvas_size), ("6 canvas injection", canvas_injection),
    ("7 registration flood", registration_flood), ("8 opaque errors", fuzz_errors),
]


async def main(as_json: bool) -> int:
    flora_port, port = free_port(), free_port()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("FLORA_")} | {"PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryFile() as log:
        ledger = Path(folder) / "ledger.sqlite3"
        flora = subprocess.Popen(  # noqa: ASYNC220 (before anything is timed)
            [sys.executable, "-c", FLORA, str(flora_port)], cwd=ROOT, env=base_env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        hosted = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-m", "flora_mcp", "--transport", "http", "--port", str(port)], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=log, env=base_env | {
                "FLORA_BASE_URL": f"http://127.0.0.1:{flora_port}/api/v1", "FLORA_OAUTH": "1",
                "FLORA_TOKEN_SECRET": secrets.token_urlsafe(32), "FLORA_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "FLORA_STATE_URL": f"sqlite:///{ledger}", "FLORA_RATE_LIMIT": "0", "FORWARDED_ALLOW_IPS": "127.0.0.1"})
        rows = []
        try:
            wait_healthy(f"http://127.0.0.1:{flora_port}/healthz", flora)
            wait_healthy(f"http://127.0.0.1:{port}/healthz", hosted)
            target = Target(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{flora_port}", ledger)
            for name, attack in ATTACKS:
                try:
                    with anyio.fail_after(90):
                        did, result, held = await attack(target)
                except Exception as exc:  # noqa: BLE001 (an attack that crashes the harness is reported, not hidden)
                    did, result, held = "(harness)", f"{type(exc).__name__}: {str(exc)[:120]}", False
                rows.append({"attack": name, "did": did, "result": result, "held": held})
            await target.http.aclose()
        finally:
            for proc in (hosted, flora):
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:  # a server still stuck in a parse does not stop on SIGTERM
                    proc.kill()
                    proc.wait(10)
            log.seek(0)
            tracebacks = log.read().decode(errors="replace").count("Traceback")
    rows.append({"attack": "8 tracebacks in the log", "did": "count 'Traceback' in the server's stderr",
                 "result": f"{tracebacks}", "held": tracebacks == 0})
    if as_json:
        print(json.dumps(rows, indent=1))
    else:
        width = max(len(r["attack"]) for r in rows)
        print(f"{'attack':{width}}  {'held':6}  result  (what was done)")
        for r in rows:
            print(f"{r['attack']:{width}}  {'HELD' if r['held'] else 'BROKEN':6}  {r['result']}  ({r['did']})")
    return 0 if all(r["held"] for r in rows) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    sys.exit(anyio.run(main, parser.parse_args().json))
