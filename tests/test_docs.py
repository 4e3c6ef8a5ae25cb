"""The README and docs/ tell the truth about the code: generated tables match it, links land, the README
stays short enough to finish, and every command it gives is run by CI or a test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scripts.gen_docs import REGIONS, readme_commands, region

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]

# Pages other branches are writing (issues 21, 22, 25, 26, 27); the README links them already. Remove a
# name here when its page lands.
PENDING_PAGES: set[str] = set()


@pytest.mark.parametrize(("page", "name"), [(page, name) for page, regions in REGIONS.items() for name in regions],
                         ids=lambda value: str(value))
def test_generated_tables_match_the_code(page, name):
    written = region((ROOT / page).read_text(), name)
    assert written == REGIONS[page][name]() + "\n", f"{page}: the {name} table is stale: python scripts/gen_docs.py"


def test_the_tool_table_names_every_tool_and_the_settings_table_every_variable():
    from flora_mcp.config import Settings
    from flora_mcp.server import all_tools

    tools = region(README.read_text(), "tools")
    assert [f"`{t.name}`" for t in all_tools()] == re.findall(r"^\| (`\w+`)", tools, re.M)[:len(all_tools())]
    settings = region((ROOT / "docs/configuration.md").read_text(), "settings")
    assert {f"FLORA_{n.upper()}" for n in Settings.model_fields} == set(re.findall(r"`(FLORA_\w+)`", settings))


def test_the_readme_is_one_a_newcomer_finishes():
    assert len(README.read_bytes()) <= 10 * 1024


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_lands(page):
    links = [target.split("#")[0] for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text())
             if not target.startswith(("http://", "https://", "mailto:", "#"))]
    missing = [t for t in links if not (page.parent / t).exists()
               and str((page.parent / t).resolve().relative_to(ROOT)) not in PENDING_PAGES]
    assert missing == []


def test_every_docs_page_is_linked_from_the_readme():
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)\)", README.read_text()))
    assert {f"docs/{p.name}" for p in PAGES[1:]} <= linked
    assert PENDING_PAGES <= linked


def test_every_readme_command_is_run_by_ci_or_a_test():
    """The ```bash blocks run line by line in .ci/readme-commands (called from .ci/run); each inline
    command the README names is run where this table says."""
    text = README.read_text()
    ci = (ROOT / ".ci/run").read_text()
    assert "bash .ci/readme-commands" in ci
    assert readme_commands(text) == [
        'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/flora-mcp demo',
        ".venv/bin/python -m pytest",
    ]
    assert not re.search(r"^```(sh|shell|console|zsh)\b", text, re.M), "shell blocks are ```bash, so CI runs them"
    inline = set(re.findall(r"`((?:python|flora-mcp|uvx|pip)\b[^`]*)`", text))
    wheel_smoke = (ROOT / ".ci/wheel-smoke").read_text()
    run_where = {  # command -> (the script that runs it, the text that runs it there)
        "python -m pytest -m slow": (ci, "python -m pytest -m slow"),
        "python scripts/gen_docs.py": (ci, "python scripts/gen_docs.py --check"),
        "flora-mcp demo": (readme_commands(text)[0], ".venv/bin/flora-mcp demo"),
        "flora-mcp": (wheel_smoke, "/bin/flora-mcp"),  # the installed command over stdio, as a client runs it
    }
    assert inline == set(run_where), "a command in the README that nothing runs"
    assert [command for command, (script, line) in run_where.items() if line not in script] == []


def test_tool_counts_in_the_docs_are_the_servers():
    from flora_mcp.server import all_tools

    core = sum(t.toolset == "core" for t in all_tools())
    read_only = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                 "twelve"][sum(t.read_only for t in all_tools())]
    for page in ("docs/tools.md", "docs/configuration.md"):
        text = " ".join((ROOT / page).read_text().split())
        assert f"`core` alone is {core} tools" in text, page
        assert f"the {read_only} list/get/read tools" in text, page
