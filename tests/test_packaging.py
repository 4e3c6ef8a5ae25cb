"""server.json (MCP registry metadata) and the Dockerfile, checked rather than trusted."""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import httpx2
import jsonschema
import pytest

import flora_mcp
from flora_mcp.config import Settings
from tests.helpers import free_port, wait_healthy

ROOT = Path(__file__).parent.parent

def registry_schema(schema_url: str) -> dict:
    """The MCP registry's published schema for the version server.json declares, vendored byte for byte
    into tests/registry_schema/<date>/ (see SOURCE.md there); MCP_SERVER_SCHEMA may point at another copy."""
    if os.environ.get("MCP_SERVER_SCHEMA"):
        return json.loads(Path(os.environ["MCP_SERVER_SCHEMA"]).read_text())
    date = schema_url.rstrip("/").split("/")[-2]
    return json.loads((ROOT / "tests" / "registry_schema" / date / "server.schema.json").read_text())


def test_server_json_is_valid_against_the_registry_schema_and_matches_the_package():
    meta = json.loads((ROOT / "server.json").read_text())
    schema = registry_schema(meta["$schema"])
    assert schema["$id"] == meta["$schema"]
    jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker()).validate(meta)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    [package] = meta["packages"]
    assert meta["version"] == package["version"] == project["version"] == flora_mcp.__version__
    assert package["identifier"] == project["name"] and package["registryType"] == "pypi"
    fields = {f"FLORA_{name.upper()}" for name in Settings.model_fields}
    for env in package["environmentVariables"]:
        assert env["name"] in fields, f"{env['name']} is not a setting"
    key = next(e for e in package["environmentVariables"] if e["name"] == "FLORA_API_KEY")
    assert key["isSecret"] is True
    [remote] = meta["remotes"]
    assert remote["type"] == "streamable-http" and remote["url"].endswith("/mcp")
    assert remote["headers"][0]["name"] == "Authorization" and remote["headers"][0]["isSecret"]
    # Every {placeholder} in the URL template is a declared variable (the schema cannot check this).
    assert set(re.findall(r"{(\w+)}", remote["url"])) == set(remote.get("variables", {})) == {"host"}


def test_readme_carries_the_registry_ownership_marker_for_the_pypi_package():
    """The registry accepts a PyPI package only if its description (our README) names the server."""
    meta = json.loads((ROOT / "server.json").read_text())
    readme = (ROOT / "README.md").read_text()
    marker = re.search(r"^<!-- mcp-name: (\S+) -->$", readme, re.MULTILINE)
    assert marker, "README.md lacks the `<!-- mcp-name: ... -->` line"
    assert marker.group(1) == meta["name"]


def _dockerfile() -> dict[str, object]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    steps: dict[str, object] = {"env": env}
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
        elif word == "LABEL":
            steps.setdefault("LABEL", {}).update(dict(re.findall(r'([\w.]+)="([^"]*)"', rest)))
        elif word in ("CMD", "FROM", "USER", "EXPOSE", "RUN"):
            steps[word] = rest.strip()
        elif word == "HEALTHCHECK":
            steps["HEALTHCHECK"] = json.loads(rest[rest.index("CMD") + 3:].strip())
    return steps


@pytest.mark.slow
def test_dockerfile_is_slim_non_root_and_its_command_serves_with_a_passing_healthcheck():
    """The image's steps, run here (no Docker engine on these machines): its ENV, its CMD, its HEALTHCHECK."""
    steps = _dockerfile()
    assert "slim" in str(steps["FROM"]) and steps["USER"] not in ("root", "0", None)
    env = steps["env"]
    assert env["FLORA_HOST"] == "0.0.0.0" and env["FLORA_PORT"] == steps["EXPOSE"]
    port = str(free_port())
    command = json.loads(str(steps["CMD"]))
    assert command[0] == "flora-mcp"
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("FLORA_")} | env | {"FLORA_PORT": port}
    proc = subprocess.Popen([sys.executable, "-m", "flora_mcp", *command[1:]], env=run_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
        health = [part.replace(env["FLORA_PORT"], port) for part in steps["HEALTHCHECK"]]
        health[0] = sys.executable if health[0] == "python" else health[0]
        assert subprocess.run(health, timeout=10).returncode == 0
        r = httpx2.post(f"http://127.0.0.1:{port}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert r.status_code == 401  # hosted mode: no key, no service
    finally:
        proc.terminate()
        proc.wait(5)


def test_docker_image_carries_the_registry_label_and_installs_pinned_dependencies():
    steps = _dockerfile()
    meta = json.loads((ROOT / "server.json").read_text())
    assert steps["LABEL"]["io.modelcontextprotocol.server.name"] == meta["name"]
    assert "pip install --constraint docker/constraints.txt ." in str(steps["RUN"])
    pinned = dict(line.split("==") for line in (ROOT / "docker" / "constraints.txt").read_text().splitlines()
                  if line and not line.startswith("#"))
    # Every distribution the image needs at run time is pinned (names only: versions are whatever the
    # script saw when it was run; a fresh CI environment may resolve newer ones).
    script = runpy.run_path(str(ROOT / "scripts" / "pin-docker-deps"))  # its __name__ is not __main__
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = script["runtime_closure"](project["dependencies"], script["image_environment"]())
    assert set(needed) - set(pinned) == set(), "run scripts/pin-docker-deps"
    assert {"mcp", "pydantic", "cryptography"} <= set(pinned)  # extras followed: pyjwt[crypto]


@pytest.mark.slow
def test_python_m_build_makes_an_sdist_and_wheel_with_licence_and_types_and_nothing_from_ci(tmp_path):
    """What a publisher uploads to PyPI: `python -m build` run on this tree, each archive opened."""
    # A stray CI log in the tree must not travel (one once did: 34 KB of tracebacks).
    stray = ROOT / ".ci" / "interop-server-0.log"
    created = not stray.exists()
    if created:
        stray.write_text("Traceback (most recent call last):\n")
    try:
        done = subprocess.run([sys.executable, "-m", "build", "--outdir", str(tmp_path), str(ROOT)],
                              capture_output=True, text=True, timeout=300, check=False)
    finally:
        if created:
            stray.unlink()
    assert done.returncode == 0, done.stderr[-2000:]
    [sdist] = tmp_path.glob("flora_mcp-*.tar.gz")
    [wheel] = tmp_path.glob("flora_mcp-*-py3-none-any.whl")

    top = sdist.name.removesuffix(".tar.gz")
    with tarfile.open(sdist) as archive:
        in_sdist = {name.removeprefix(top + "/") for name in archive.getnames()}
    assert {"LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "flora_mcp/py.typed"} <= in_sdist
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
        metadata = archive.read(f"{wheel.name.split('-py3')[0]}.dist-info/METADATA").decode()
    assert "flora_mcp/py.typed" in in_wheel
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in in_wheel)
    assert "License-Expression: MIT" in metadata and "mcp-name: io.github.flora-mcp/flora-mcp" in metadata
    for name in in_sdist | in_wheel:
        assert not name.startswith(".ci/") and not name.endswith((".log", ".pyc", ".mcpb")), name


# --- MCP Bundle (.mcpb) for Claude Desktop ---------------------------------------------------------------
def _resolve_like_claude_desktop(manifest: dict, bundle: Path, user_config: dict) -> dict[str, str]:
    """mcp_config.env with ${user_config.*} filled in from the user's answers, else the defaults
    (the substitution @anthropic-ai/mcpb's getMcpConfigForManifest does; .ci/mcpb-smoke runs the real one)."""
    values = {k: v["default"] for k, v in manifest["user_config"].items() if "default" in v} | user_config
    as_text = {f"${{user_config.{k}}}": (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in values.items()}
    env = {}
    for name, template in manifest["server"]["mcp_config"]["env"].items():
        for placeholder, value in as_text.items():
            template = template.replace(placeholder, value)
        env[name] = template.replace("${__dirname}", str(bundle))
    return env


def test_bundle_manifest_maps_user_config_onto_real_settings():
    manifest = json.loads((ROOT / "mcpb" / "manifest.json").read_text())
    assert manifest["version"] == flora_mcp.__version__
    assert manifest["server"]["type"] == "uv"  # pydantic and Pillow are compiled: uv installs them per platform
    config = manifest["user_config"]
    assert config["api_key"]["sensitive"] is True and config["output_dir"]["type"] == "directory"
    assert config["sandbox"]["type"] == "boolean" and config["budget_usd"]["type"] == "number"
    fields = {f"FLORA_{name.upper()}" for name in Settings.model_fields}
    env = manifest["server"]["mcp_config"]["env"]
    assert set(env) <= fields, f"not settings: {set(env) - fields}"
    used = set(re.findall(r"\$\{user_config\.(\w+)\}", json.dumps(manifest["server"])))
    assert used == set(config), "every question is used, and every answer used is asked"
    for name, option in config.items():
        # Claude Desktop leaves an unanswered optional field's placeholder in place (mcpb#250) and does not
        # expand ${HOME} in a default (mcpb#251): every optional field needs a literal default.
        assert option.get("required") or "default" in option, name
        assert "${" not in str(option.get("default", "")), name


@pytest.mark.slow
def test_built_bundle_starts_with_the_default_answers_and_with_the_sandbox_on(tmp_path):
    """The staged bundle's server.py, started with the environment Claude Desktop would give it."""
    build = runpy.run_path(str(ROOT / "scripts" / "build-mcpb"))
    bundle = tmp_path / "bundle"
    build["stage"](bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    from flora_mcp.server import all_tools

    assert [t["name"] for t in manifest["tools"]] == [spec.name for spec in all_tools()]
    assert {p.name for p in bundle.iterdir()} == {"manifest.json", "server.py", "pyproject.toml", "README.md",
                                                  "LICENSE", "flora_mcp"}
    assert not list(bundle.rglob("__pycache__"))

    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLORA_") and k != "PYTHONPATH"}
    for answers in ({}, {"sandbox": True, "output_dir": str(tmp_path / "out")}):
        env = clean | _resolve_like_claude_desktop(manifest, bundle, answers)
        done = subprocess.run([sys.executable, str(bundle / "server.py")], env=env, cwd=tmp_path, check=False,
                              input=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                                  "protocolVersion": "2025-06-18", "capabilities": {},
                                  "clientInfo": {"name": "bundle-test", "version": "0"}}}) + "\n",
                              capture_output=True, text=True, timeout=60)
        answer = json.loads(done.stdout.splitlines()[0])
        assert answer["result"]["serverInfo"]["name"] == "flora-mcp", (answers, done.stderr[-1500:])
