"""A bad setting at start-up: one line on stderr naming the variable or option and what it accepts,
exit status 2, nothing on stdout (it belongs to the protocol) and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from flora_mcp.cli import _parser
from flora_mcp.config import Settings, SettingsError, load_settings
from flora_mcp.toolsets import TOOLSETS


def start(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLORA_")}
    return subprocess.run([sys.executable, "-m", "flora_mcp", *args], env=clean | env, stdin=subprocess.DEVNULL, check=False,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow  # a process per case
@pytest.mark.parametrize(("args", "env", "named", "allowed"), [
    ((), {"FLORA_WAIT_SECONDS": "abc"}, "FLORA_WAIT_SECONDS='abc'", "a number from 0 to 50"),
    (("--toolsets", "bogus"), {}, "--toolsets='bogus'", ", ".join(TOOLSETS)),
    ((), {"FLORA_TOOLSETS": "core,everything"}, "FLORA_TOOLSETS='core,everything'", ", ".join(TOOLSETS)),
    (("--sandbox",), {"FLORA_READ_ONLY": "maybe"}, "FLORA_READ_ONLY='maybe'", "true or false"),
    (("--log-level", "loud"), {}, "--log-level='loud'", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
], ids=["wait-seconds", "toolsets-option", "toolsets-variable", "read-only", "log-level"])
def test_a_bad_setting_prints_one_line_naming_it_and_exits_2(args, env, named, allowed):
    done = start(*args, **env)
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"flora-mcp: {named} is not valid") and allowed in line, line


def test_every_bad_setting_is_named_on_the_same_line_and_an_option_wins_over_its_variable(monkeypatch):
    for name in [k for k in os.environ if k.startswith("FLORA_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FLORA_TIMEOUT", "0")
    monkeypatch.setenv("FLORA_TOOLSETS", "core")  # fine, but the option below replaces it
    with pytest.raises(SettingsError) as caught:
        load_settings(toolsets="nope")
    line = caught.value.describe({"toolsets": "--toolsets"})
    assert "\n" not in line
    assert "FLORA_TIMEOUT='0' is not valid (input should be greater than 0): use a number more than 0" in line
    assert "--toolsets='nope' is not valid: unknown toolset 'nope'" in line
    assert "FLORA_TOOLSETS" not in line


def test_a_secret_is_never_echoed(monkeypatch):
    with pytest.raises(SettingsError) as caught:
        load_settings(api_key=["sk_live_not_a_string"])
    assert "sk_live" not in str(caught.value) and str(caught.value).startswith("api_key is not valid")


def test_toolset_names_come_from_one_list_for_help_settings_and_server():
    help_text = " ".join(_parser().format_help().split())
    description = Settings.model_fields["toolsets"].description or ""
    for name in TOOLSETS:
        assert name in help_text and name in description
    from flora_mcp.server import all_tools

    assert {spec.toolset for spec in all_tools()} == set(TOOLSETS)
