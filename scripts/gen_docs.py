"""Rewrite the documentation's generated tables from the code.

    python scripts/gen_docs.py             # rewrite the marked regions in place
    python scripts/gen_docs.py --check     # exit 1, naming the stale files, if a region differs from the code
    python scripts/gen_docs.py --commands  # print the README's ```bash blocks (.ci/readme-commands runs them)

A region sits between `<!-- NAME:start -->` and `<!-- NAME:end -->`:
  tools     (README.md)              every tool, from the server's ToolSpecs (name, toolset, read-only, description)
  settings  (docs/configuration.md)  every FLORA_* variable, from flora_mcp/config.py's Settings fields
tests/test_docs.py fails when a region drifts from what this script would write.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tools_table() -> str:
    from flora_mcp.server import all_tools

    rows = ["| tool | toolset | read-only | what it does (the description agents read) |", "| --- | --- | --- | --- |"]
    for spec in all_tools():
        rows.append(f"| `{spec.name}` | {spec.toolset} | {'yes' if spec.read_only else 'no'} | "
                    f"{_cell(spec.description)} |")
    return "\n".join(rows)


def settings_table() -> str:
    from flora_mcp.config import ENV_PREFIX, Settings

    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | {_default(field.default)} | {_cell(field.description or '')} |")
    return "\n".join(rows)


def _default(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`" if str(value) else "—"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


# file -> {region name: renderer}
REGIONS = {
    "README.md": {"tools": tools_table},
    "docs/configuration.md": {"settings": settings_table},
}


def _marker(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- {name}:start -->\n)(.*?)(<!-- {name}:end -->)", re.S)


def region(text: str, name: str) -> str:
    """The text between a region's markers (without them); a ValueError if the markers are missing."""
    found = _marker(name).search(text)
    if found is None:
        raise ValueError(f"no <!-- {name}:start --> ... <!-- {name}:end --> region")
    return found.group(2)


def rendered(text: str, renderers: dict) -> str:
    """`text` with each region replaced by what its renderer writes now."""
    for name, render in renderers.items():
        region(text, name)  # the markers must be there
        text = _marker(name).sub(lambda m, r=render: m.group(1) + r() + "\n" + m.group(3), text)
    return text


def readme_commands(text: str) -> list[str]:
    """Every line of the ```bash blocks in `text`: the commands a newcomer is told to run."""
    blocks = re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def main(argv: list[str]) -> int:
    if "--commands" in argv:
        print("\n".join(readme_commands((ROOT / "README.md").read_text())))
        return 0
    check = "--check" in argv
    stale = []
    for relative, renderers in REGIONS.items():
        path = ROOT / relative
        old = path.read_text()
        new = rendered(old, renderers)
        if new != old:
            stale.append(relative)
            if not check:
                path.write_text(new)
    if check and stale:
        print(f"stale generated tables in {', '.join(stale)}: run python scripts/gen_docs.py", file=sys.stderr)
        return 1
    print(("rewrote " + ", ".join(stale)) if stale and not check else "generated tables are current")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
