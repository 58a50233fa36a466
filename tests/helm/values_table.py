"""The chart README's value tables, generated from values.yaml's ``## @param`` comments.

    .venv/bin/python -m tests.helm.values_table          rewrite the README's "## Values"
    .venv/bin/python -m tests.helm.values_table --check  exit 1 if the README is stale

``## @section Title`` starts a table; ``## @param dotted.key Description``
documents the value at that path; its default is read from the parsed file.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[2] / "helm" / "lfr-stream"
HEADER = "## Values\n"


def _default(values: dict[str, Any], key: str) -> str:
    node: Any = values
    for part in key.split("."):
        node = node[part]
    nested = isinstance(node, dict) or (
        isinstance(node, list) and any(isinstance(item, dict | list) for item in node)
    )
    if node and nested:
        return "`(see values.yaml)`"
    return f"`{json.dumps(node)}`"


def values_section(values_text: str) -> str:
    """The README's ``## Values`` section for this values.yaml text."""
    values = yaml.safe_load(values_text)
    out = [HEADER]
    for line in values_text.splitlines():
        section = re.match(r"\s*## @section (.+)$", line)
        if section:
            out += [
                f"\n### {section.group(1)}\n",
                "\n| Key | Description | Default |\n",
                "| --- | --- | --- |\n",
            ]
            continue
        param = re.match(r"\s*## @param (\S+) (.+)$", line)
        if param:
            key, description = param.groups()
            out.append(f"| `{key}` | {description} | {_default(values, key)} |\n")
    return "".join(out)


def render_readme(readme: str, values_text: str) -> str:
    """``readme`` with its ``## Values`` section (up to the next ``## `` or the end) replaced."""
    start = readme.index(HEADER)
    rest = readme[start + len(HEADER) :]
    following = re.search(r"^## ", rest, re.M)
    end = start + len(HEADER) + following.start() if following else len(readme)
    tail = readme[end:]
    return readme[:start] + values_section(values_text) + ("\n" + tail if tail else "")


def main(argv: list[str]) -> int:
    readme_path = CHART / "README.md"
    readme = readme_path.read_text()
    fresh = render_readme(readme, (CHART / "values.yaml").read_text())
    if "--check" in argv:
        return 0 if fresh == readme else 1
    readme_path.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
