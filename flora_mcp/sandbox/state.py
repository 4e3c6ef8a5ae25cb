"""What the sandbox remembers: accounts (one per API key), their workspaces and projects, runs,
idempotency keys, charges, and the faults tests switch on."""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .canvas import ProjectCanvas
from .catalog import DEFAULT_MODEL, MODELS_BY_ID, USD_PER_CREDIT

SANDBOX_API_KEY = "sk_sandbox_demo"
# Any key of this shape gets its own account, so hosted-mode tests can have many users.
SANDBOX_KEY_PATTERN = re.compile(r"^sk_sandbox_[A-Za-z0-9_-]{1,64}$")
IDEMPOTENCY_WINDOW = 2 * 3600.0
REQUEST_LOG_SIZE = 10_000  # tests read the recent requests; a long-running sandbox must not grow forever
PENDING_SECONDS = 1.0  # simulated seconds a run waits in the queue before it starts


class ManualClock:
    """A clock tests move by hand, so runs finish without real waiting."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Faults:
    """Failures to inject. Counters count down as they fire; `None`/0 means off."""

    server_errors: int = 0  # next N API requests answer 503 unknown_error
    drop_after_processing: int = 0  # next N POSTs are processed, then the connection drops
    slow_seconds: float = 0.0  # every API request waits this long first
    fail_runs: int = 0  # next N runs end `failed` with provider_error
    rate_limit: int | None = None  # max API requests per key per `rate_window` seconds
    rate_window: float = 60.0
    slow_answers: int = 0  # next N POSTs are processed, then answered only after `slow_answer_seconds`
    slow_answer_seconds: float = 0.0
    only_paths: tuple[str, ...] = ()  # limit server_errors/drop/slow answers to these paths ("/runs/*": a prefix)
    # Webhook deliveries (a run started with callback_url), as FLORA's at-least-once delivery can go wrong:
    webhook_duplicates: int = 0  # next N deliveries arrive twice
    webhook_bad_signatures: int = 0  # next N deliveries first arrive with a wrong signature (then as FLORA retries)
    webhook_replays: int = 0  # next N deliveries are followed by a copy signed 400 s ago (a replay)
    webhook_delay: float = 0.0  # every delivery arrives this many seconds late (after later runs' ones)

    def applies(self, path: str) -> bool:
        return not self.only_paths or any(
            path.startswith(p[:-1]) if p.endswith("*") else path == p for p in self.only_paths)


@dataclass
class Account:
    key_fingerprint: str
    workspaces: list[dict[str, Any]]
    projects: list[dict[str, Any]]
    credits: float | None = None  # None: unlimited


@dataclass
class SandboxRun:
    run_id: str
    account: str
    workspace_id: str
    project_id: str
    media_type: str  # image | video | audio | text: what a generation makes
    model_id: str
    prompt: str
    params: dict[str, Any]
    created_at: float
    estimated_seconds: int
    final_cost: float
    fails: bool
    outputs: list[dict[str, Any]] = field(default_factory=list)
    run_type: str = "generation"  # generation | action | technique: what started it (the start answer's `type`)
    produced: list[tuple[str, str, bytes, str]] | None = None  # action/technique results, shown on completion
    canvas_node: str | None = None  # a canvas action run: its outputs appear on the canvas, wired from this node
    callback_url: str | None = None  # where its run.completed / run.failed webhook is delivered


def _short_hash(*parts: str, n: int = 10) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:n]


def fingerprint(api_key: str) -> str:
    return _short_hash("key", api_key, n=12)


_PROJECT_NAMES = [
    "Spring campaign", "Product shots", "Moodboard", "Launch video", "Podcast intro", "Brand refresh",
    "Storyboard", "Social posts", "Packaging", "Lookbook", "Website hero", "Newsletter art",
    "Trade show", "Holiday cards", "App icons", "Character design", "Music video", "Recipe book",
    "Travel poster", "Album cover", "Pitch deck", "Explainer", "Event teaser", "Tutorial series",
    "Archive",
]


class SandboxState:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        speed: float = 5.0,
        credits: float | None = None,
        public_base_url: str = "http://sandbox.flora.local",
        idempotency_mode: str = "conflict",
    ) -> None:
        self.clock = clock
        self.speed = speed
        self.default_credits = credits
        self.public_base_url = public_base_url.rstrip("/")
        self.faults = Faults()
        self.accounts: dict[str, Account] = {}
        self.runs: dict[str, SandboxRun] = {}
        self.idempotency: dict[tuple[str, str], float] = {}
        # "conflict": a spent key answers 409 (FLORA's spec); "replay": the first answer again (FLORA's docs)
        self.idempotency_mode = idempotency_mode
        self.answers: dict[tuple[str, str], tuple[str, int, bytes]] = {}  # replay mode: (account, key) -> answer
        self.charges: list[tuple[str, str, float]] = []  # (account, run_id, usd) for every accepted run
        self.feedback: list[dict[str, Any]] = []  # every POST /feedback, as recorded
        self.request_log: list[tuple[str, str, str]] = []  # (account, method, path), the latest REQUEST_LOG_SIZE
        self.requests_seen = 0
        self.webhook_log: list[dict[str, Any]] = []  # each webhook delivery attempt and its answer (sandbox/webhooks.py)
        self.downloads: list[str] = []  # output file paths served, in order
        self._rate: dict[str, list[float]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.files: dict[str, tuple[bytes, str]] = {}  # "run_id/name" -> (bytes, mime)
        self.assets: dict[str, dict[str, Any]] = {}  # asset_id -> {account, filename, content_type, data, status}
        self.canvases: dict[str, ProjectCanvas] = {}  # project_id -> its canvas

    # --- accounts ------------------------------------------------------------------------------------
    def account_for(self, api_key: str) -> Account | None:
        if not SANDBOX_KEY_PATTERN.match(api_key):
            return None
        fp = fingerprint(api_key)
        with self._lock:
            if fp not in self.accounts:
                self.accounts[fp] = self._seed_account(fp, demo=api_key == SANDBOX_API_KEY)
            return self.accounts[fp]

    def _seed_account(self, fp: str, *, demo: bool) -> Account:
        created = int(self.clock()) - 90 * 86400
        names = [("FLORA Sandbox Studio", "owner"), ("Client Work", "member")] if demo else [(f"Studio {fp[:6]}", "owner")]
        workspaces = [
            {"workspace_id": f"ws_{_short_hash(fp, n)}", "name": n, "created_at": created, "role": role}
            for n, role in names
        ]
        projects = []
        for wi, ws in enumerate(workspaces):
            count = len(_PROJECT_NAMES) if wi == 0 else 3
            for i, name in enumerate(_PROJECT_NAMES[:count] if wi == 0 else ["Client A", "Client B", "Pitch"]):
                projects.append({
                    "project_id": f"prj_{_short_hash(fp, ws['workspace_id'], name)}",
                    "name": name,
                    "workspace_id": ws["workspace_id"],
                    "origin": "api" if i % 5 == 4 else "app",
                    "last_modified": created + 86400 * (60 - i),
                    "created_at": created + 3600 * i,
                })
        return Account(fp, workspaces, projects, credits=self.default_credits)

    def canvas(self, project_id: str) -> ProjectCanvas:
        with self._lock:
            return self.canvases.setdefault(project_id, ProjectCanvas())

    def canvas_url(self, project_id: str) -> str:
        return f"{self.public_base_url}/canvas/{project_id}"

    def new_id(self, prefix: str, *parts: str) -> str:
        return f"{prefix}_{_short_hash(str(next(self._ids)), str(self.clock()), *parts, n=16)}"

    # --- rate limits and idempotency ------------------------------------------------------------------
    def log_request(self, account: str, method: str, path: str) -> None:
        self.requests_seen += 1
        self.request_log.append((account, method, path))
        if len(self.request_log) > 2 * REQUEST_LOG_SIZE:  # trimmed in batches: amortised O(1) per request
            del self.request_log[:-REQUEST_LOG_SIZE]

    def rate_limited(self, account: str) -> float | None:
        """Seconds to wait if this request exceeds the configured rate, else None (and it is counted).

        FLORA's own limit, played by the sandbox on its clock (a fault a test turns on). Not the hosted
        server's limit on its callers (transports/http.py), which counts in the ledger's shared store."""
        limit = self.faults.rate_limit
        if not limit:
            return None
        now = self.clock()
        window = [t for t in self._rate.get(account, []) if now - t < self.faults.rate_window]
        if len(window) >= limit:
            self._rate[account] = window
            return max(1.0, self.faults.rate_window - (now - window[0]))
        window.append(now)
        self._rate[account] = window
        return None

    def claim_idempotency_key(self, account: str, key: str) -> bool:
        """True if the key is fresh (and now spent); False if it was used in the last two hours."""
        now = self.clock()
        with self._lock:
            seen = self.idempotency.get((account, key))
            if seen is not None and now - seen < IDEMPOTENCY_WINDOW:
                return False
            self.idempotency[(account, key)] = now
            return True

    # --- runs ----------------------------------------------------------------------------------------
    def start_run(self, account: Account, body: dict[str, Any]) -> SandboxRun:
        model_id = body.get("model") or DEFAULT_MODEL[body["type"]]
        model = MODELS_BY_ID[model_id]
        params = dict(body.get("params") or {})
        # Like FLORA: unknown or out-of-range params are accepted and billed, and the final charge
        # can be well above the estimate (bigger outputs cost more).
        multiplier = {"2K": 2.0, "4K": 4.0}.get(str(params.get("resolution")), 1.0)
        count = params.get("num_images", 1)
        multiplier *= count if isinstance(count, int) and count > 0 else 1
        final_cost = round(model["estimated_credits"] * USD_PER_CREDIT * multiplier * 1.25, 4)
        fails = False
        if self.faults.fail_runs:
            self.faults.fail_runs -= 1
            fails = True
        run = SandboxRun(
            run_id=self.new_id("run", account.key_fingerprint),
            account=account.key_fingerprint,
            workspace_id=body["workspace_id"],
            project_id=body["project_id"],
            media_type=model["type"],
            model_id=model_id,
            prompt=body["prompt"],
            params=params,
            created_at=self.clock(),
            estimated_seconds=model["estimated_seconds"],
            final_cost=final_cost,
            fails=fails,
        )
        with self._lock:
            self.runs[run.run_id] = run
            self.charges.append((account.key_fingerprint, run.run_id, final_cost))
            if account.credits is not None:
                account.credits -= final_cost / USD_PER_CREDIT
        return run

    def start_processed_run(self, account: Account, *, run_type: str, workspace_id: str, project_id: str, label: str,
                            produced: list[tuple[str, str, bytes, str]], seconds: int, cost: float,
                            canvas_node: str | None = None) -> SandboxRun:
        """An action or technique run: its outputs are already computed and appear on completion."""
        fails = False
        if self.faults.fail_runs:
            self.faults.fail_runs -= 1
            fails = True
        run = SandboxRun(
            run_id=self.new_id("run", account.key_fingerprint), account=account.key_fingerprint,
            workspace_id=workspace_id, project_id=project_id, media_type="image", model_id=label, prompt=label,
            params={}, created_at=self.clock(), estimated_seconds=seconds, final_cost=cost, fails=fails,
            run_type=run_type, produced=produced, canvas_node=canvas_node,
        )
        with self._lock:
            self.runs[run.run_id] = run
            self.charges.append((account.key_fingerprint, run.run_id, cost))
        return run

    def read_url(self, url: str, account: Account) -> bytes:
        """Bytes behind a URL this sandbox served (a run output or an uploaded asset).

        The sandbox has no network, so any other URL is refused, as an unreachable one would be.
        """
        from .media import render_output

        base = self.public_base_url
        if url.startswith(f"{base}/files/"):
            run_id, _, name = url.removeprefix(f"{base}/files/").partition("/")
            run = self.runs.get(run_id)
            if run is None or not any(o["url"] == url for o in self.view_run(run).get("outputs", [])):
                raise LookupError("no such run output")
            key = f"{run_id}/{name}"
            if key not in self.files:
                self.files[key] = render_output(run, name)
            return self.files[key][0]
        if url.startswith(f"{base}/media/assets/"):
            asset_id = url.removeprefix(f"{base}/media/assets/").split("/", 1)[0]
            asset = self.assets.get(asset_id)
            if asset is None or asset["status"] != "ready" or asset["account"] != account.key_fingerprint:
                raise LookupError("no such asset")
            return asset["data"]
        raise LookupError("the sandbox can only read URLs it served (run outputs and uploaded assets)")

    def estimated_cost(self, body: dict[str, Any]) -> float:
        model = MODELS_BY_ID[body.get("model") or DEFAULT_MODEL[body["type"]]]
        return model["estimated_credits"]

    def view_run(self, run: SandboxRun) -> dict[str, Any]:
        """The run as GET /runs/{id} shows it now; its state follows from the clock."""
        elapsed = (self.clock() - run.created_at) * self.speed
        body: dict[str, Any] = {
            "run_id": run.run_id,
            "created_at": run.created_at,
            "poll_url": f"{self.public_base_url}/api/v1/runs/{run.run_id}",
        }
        if elapsed < PENDING_SECONDS:
            return body | {"status": "pending", "progress": 0, "charged_cost": 0}
        started = run.created_at + PENDING_SECONDS / self.speed
        duration = max(run.estimated_seconds, 1)
        if elapsed < PENDING_SECONDS + duration:
            progress = round(100 * (elapsed - PENDING_SECONDS) / duration, 1)
            return body | {"status": "running", "progress": progress, "started_at": started, "charged_cost": 0}
        completed = started + duration / self.speed
        body |= {"started_at": started, "completed_at": completed}
        if run.fails:
            return body | {
                "status": "failed",
                "progress": 100,
                "charged_cost": 0,
                "error_code": "provider_error",
                "error_message": "The provider failed to complete the generation.",
            }
        if not run.outputs:
            run.outputs = self._outputs_for(run)
            if run.canvas_node is not None:
                self.canvas(run.project_id).add_outputs(run.canvas_node, run.outputs, f"{run.prompt} output")
        return body | {"status": "completed", "progress": 100, "charged_cost": run.final_cost, "outputs": run.outputs}

    def _outputs_for(self, run: SandboxRun) -> list[dict[str, Any]]:
        if run.produced is not None:
            outputs = []
            for i, (kind, ext, data, mime) in enumerate(run.produced):
                name = f"output_{i + 1}.{ext}"
                self.files[f"{run.run_id}/{name}"] = (data, mime)
                outputs.append({"output_id": f"output_{i + 1}", "type": kind,
                                "url": f"{self.public_base_url}/files/{run.run_id}/{name}"})
            return outputs
        kind, ext = {
            "image": ("imageUrl", "png"),
            "video": ("videoUrl", "mp4"),
            "audio": ("audioUrl", "wav"),
            "text": ("text", "txt"),
        }[run.media_type]
        count = run.params.get("num_images", 1) if run.media_type == "image" else 1
        count = count if isinstance(count, int) and 1 <= count <= 4 else 1
        return [
            {
                "output_id": f"output_{i + 1}",
                "type": kind,
                "url": f"{self.public_base_url}/files/{run.run_id}/output_{i + 1}.{ext}",
            }
            for i in range(count)
        ]
