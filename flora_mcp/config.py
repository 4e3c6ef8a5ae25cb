"""Configuration from environment variables (prefix FLORA_), read when asked, never at import.

A plain pydantic model plus a ten-line environment reader. pydantic-settings did this too, but importing
it cost about 100 ms when measured (its cloud secret providers load eagerly), and stdio start-up time is a
product target (docs/performance.md); the validation is pydantic's either way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError

from ._ids import not_a_flora_key
from ._settings_errors import SettingsError, settings_error
from .toolsets import CHOICES as TOOLSET_CHOICES
from .toolsets import parse_toolsets

DEFAULT_BASE_URL = "https://app.flora.ai/api/v1"


ENV_PREFIX = "FLORA_"
# The longest wait inside one tool call, in seconds: well under the ~60 s at which common clients give
# up on a call. FLORA_WAIT_SECONDS, the tools' wait_seconds and the poller all stop here.
MAX_WAIT_SECONDS = 50
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
__all__ = ["ENV_PREFIX", "Settings", "SettingsError", "load_settings"]


def _known_toolsets(value: str) -> str:
    parse_toolsets(value)  # raises, naming the toolsets there are
    return value


def _known_state_url(value: str | None) -> str | None:
    if value:
        from .ledger import state_url_problem

        problem = state_url_problem(value)
        if problem:
            raise ValueError(problem)
    return value


def _metrics_target(value: str | None) -> str | None:
    """FLORA_METRICS: `app` (/metrics on the hosted app) or where its own listener binds ([host:]port)."""
    if value is None or value == "app":
        return value
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536 or (":" in host and not host.startswith("[")):
        raise ValueError("use app (serve /metrics on the hosted app), a port (9464: loopback only), "
                         "or host:port (0.0.0.0:9464 to let other machines scrape)")
    return value


def _callback_base(value: str | None) -> str | None:
    """FLORA_WEBHOOK_PUBLIC_URL: FLORA refuses a callback_url that is not https (every start would then
    fail at FLORA), so it is refused here; http on loopback is the sandbox's, for tests."""
    if value is None:
        return value
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        host, parts = None, None
    loopback = host in ("127.0.0.1", "localhost", "::1")
    if parts is None or not host or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise ValueError("use the https:// address FLORA reaches this server at, like https://mcp.example.com "
                         "(FLORA refuses any other callback_url)")
    return value


def _a_flora_key(value: SecretStr | None) -> SecretStr | None:
    problem = None if value is None else not_a_flora_key(value.get_secret_value())
    if problem:
        raise ValueError(problem)
    return value


def _known_log_level(value: str) -> str:
    if value.upper() not in LOG_LEVELS:
        raise ValueError(f"choose from {', '.join(LOG_LEVELS)}")
    return value.upper()


class Settings(BaseModel):
    """Every knob of the server. Each field maps to FLORA_<NAME> in the environment."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    api_key: Annotated[SecretStr | None, AfterValidator(_a_flora_key)] = Field(
        None, description="FLORA API key (sk_live_…). Never logged.")
    base_url: str = Field(DEFAULT_BASE_URL, description="FLORA API base URL.")
    workspace_id: str | None = Field(None, description="Default ws_… workspace for tools that take one.")
    project_id: str | None = Field(None, description="Default prj_… project for generations.")
    sandbox: bool = Field(False, description="Use the embedded sandbox instead of FLORA (no key, no network).")
    sandbox_speed: float = Field(5.0, gt=0, description="How much faster than real time sandbox runs progress.")
    output_dir: Path | None = Field(None, description="Save run outputs here (stdio users).")
    max_cost_per_run: float | None = Field(None, ge=0, description="Ask before (or refuse) any one start estimated above this (USD).")
    budget_usd: float | None = Field(None, ge=0, description="Per-user spending budget (USD) over budget_window_hours; "
                                     "held across restarts, processes and replicas through the ledger.")
    budget_window_hours: float = Field(24.0, gt=0, description="The rolling window of budget_usd, in hours.")
    session_budget: float | None = Field(None, ge=0, description="Old name of budget_usd (still read).")
    state_url: Annotated[str | None, AfterValidator(_known_state_url)] = Field(
        None, description="The ledger: sqlite:///path (default: a file in the user state directory), "
        "postgresql://user@host/db for replicas, or memory: (this process only). See docs/ledger.md.")
    media_origins: str = Field("", description="MCP Apps: comma-separated origins FLORA serves output files from, "
                               "allowed in the app's CSP (default: the API's own origin).")
    usd_per_credit: float = Field(0.01, gt=0, description="USD per FLORA credit, for estimates (not in the API).")
    wait_seconds: float = Field(25.0, ge=0, le=MAX_WAIT_SECONDS,
                                description="Default wait inside one tool call for a run.")
    timeout: float = Field(30.0, gt=0, description="HTTP timeout per FLORA request, seconds.")
    max_retries: int = Field(3, ge=0, le=10, description="Retries on 429/5xx/connection errors.")
    toolsets: Annotated[str, AfterValidator(_known_toolsets)] = Field(
        "all", description=f"Toolsets to expose: {TOOLSET_CHOICES}.")
    read_only: bool = Field(False, description="Expose no tool that spends credits or changes anything.")
    log_level: Annotated[str, AfterValidator(_known_log_level)] = Field("INFO", description="Log level for stderr.")
    metrics: Annotated[str | None, AfterValidator(_metrics_target)] = Field(
        None, description="Prometheus metrics: app (/metrics on the hosted app, reachable like /mcp) or "
        "[host:]port for their own listener (a bare port is loopback only). Needs the otel extra.")

    # Hosted (HTTP) mode
    host: str = Field("127.0.0.1", description="HTTP bind address; loopback unless you mean it.")
    port: int = Field(8000, ge=0, le=65535, description="HTTP port.")
    stateless: bool = Field(True, description="HTTP: stateless Streamable HTTP (replicas need no sticky sessions).")
    fast_path: bool = Field(True, description="HTTP: serve 2025-era stateless requests through our cheaper path "
                            "(it leans on SDK internals); false: the SDK's own transport for every request.")
    single_tenant: bool = Field(False, description="HTTP: requests without their own key use FLORA_API_KEY.")
    allowed_hosts: str = Field("", description="HTTP: comma-separated Host values (DNS-rebinding guard).")
    allowed_origins: str = Field("", description="HTTP: comma-separated Origin values (DNS-rebinding guard).")
    rate_limit: int = Field(120, ge=0, description="HTTP: MCP requests per minute per key (0: unlimited).")
    max_body_bytes: int = Field(1_048_576, gt=0, description="HTTP: largest accepted request body.")

    # Hosted sign-in (OAuth 2.1, for Claude custom connectors); FLORA keys as bearer tokens keep working
    oauth: bool = Field(False, description="HTTP: also sign users in with OAuth (the page asks for their FLORA key once).")
    token_secret: SecretStr | None = Field(None, description="HTTP OAuth: secret (32+ chars) that encrypts stored "
                                           "FLORA keys; OAuth refuses to start without it. Same on every replica.")
    public_url: str | None = Field(None, description="HTTP OAuth: the https://host clients reach this server at "
                                   "(behind a proxy); names the issuer and the resource tokens are bound to.")
    oauth_access_ttl: int = Field(3600, gt=0, description="HTTP OAuth: access token lifetime, seconds.")
    oauth_refresh_ttl: int = Field(30 * 86400, gt=0, description="HTTP OAuth: refresh token lifetime, seconds.")

    # FLORA's run webhooks (docs/tasks.md): a nudge to read a finished run now, instead of polling for it
    webhook_public_url: Annotated[str | None, AfterValidator(_callback_base)] = Field(
        None, description="HTTP: the public https://host FLORA can reach this server at; starts then pass "
        "callback_url=<it>/webhooks/flora/<user>. FLORA refuses loopback and private addresses.")
    webhook_secret: SecretStr | None = Field(None, description="HTTP: the workspace's whsec_ signing secret "
                                             "(single-tenant); deliveries without a valid Flora-Signature are then "
                                             "refused. Never logged.")


def budget_usd(settings: Settings) -> float | None:
    """The budget in force: FLORA_BUDGET_USD, or the old FLORA_SESSION_BUDGET."""
    return settings.budget_usd if settings.budget_usd is not None else settings.session_budget


def state_url(settings: Settings) -> str:
    """Where the ledger lives. The embedded sandbox's runs die with the process, so its ledger does too."""
    if settings.state_url:
        return settings.state_url
    if settings.sandbox:
        return "memory:"
    from .ledger import default_state_url

    return default_state_url()


def load_settings(**overrides: object) -> Settings:
    """Read FLORA_* from the environment now; explicit overrides (e.g. command-line flags) win.

    An empty variable counts as unset, so `FLORA_API_KEY=` in a client config means "no key".
    """
    values: dict[str, object] = {}
    for name in Settings.model_fields:
        raw = os.environ.get(ENV_PREFIX + name.upper())
        if raw is not None and raw.strip() != "":
            values[name] = raw.strip()
    from_environment = set(values)
    explicit = {k: v for k, v in overrides.items() if v is not None}
    values.update(explicit)
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:  # one line naming the variable, not a traceback naming a field
        raise settings_error(exc, Settings, values, from_environment - set(explicit), ENV_PREFIX) from None
