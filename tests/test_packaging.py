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

import flora_mcp
from flora_mcp.config import Settings
from tests.servers import free_port, wait_healthy

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
