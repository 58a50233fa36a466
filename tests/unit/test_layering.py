"""The package layering of docs/architecture.md, checked on every import in the tree.

``common`` imports nothing of the project; ``schemas`` (the data contract)
only ``common``; ``sinks`` only ``common``, ``schemas`` and the topic
catalogue; the worker's stages never touch Faust or a Kafka client (only
``streams.worker.runtime`` does). Imports inside functions count too: a late import is still a
dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("common", "schemas", "streams", "sinks")

ALLOWED = {
    "common": {"common"},
    "schemas": {"common", "schemas"},
    "sinks": {"common", "schemas", "sinks", "streams.topics"},
}


RUNTIME_LIBRARIES = ("faust", "mode", "aiokafka", "kafka")
WORKER_ENTRY_POINTS = {
    "__init__.py",  # ``lfr worker`` starts the Faust worker
    "purge.py",  # ``lfr watchlist purge``: a command with a kafka-python client of its own
}


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, as dotted names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def project_imports(path: Path) -> set[str]:
    """Every project module ``path`` imports, as dotted names."""
    return {name for name in imports(path) if name.split(".")[0] in PROJECT}


def allowed(module: str, rules: set[str]) -> bool:
    return any(module == rule or module.startswith(rule + ".") for rule in rules)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_its_layer_allows(package: str) -> None:
    broken = {
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for module in project_imports(path)
        if not allowed(module, ALLOWED[package])
    }
    assert not broken, "\n".join(sorted(broken))


def test_the_checker_sees_late_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from streams.worker import app\n    import sinks.db\n")
    assert project_imports(module) == {"streams.worker", "sinks.db"}
    assert not allowed("streams.worker", ALLOWED["sinks"])
    assert allowed("streams.topics", ALLOWED["sinks"])


def test_the_worker_stages_import_no_runtime() -> None:
    worker = ROOT / "streams" / "worker"
    stages = [p for p in sorted(worker.glob("*.py")) if p.name not in WORKER_ENTRY_POINTS]
    assert len(stages) > 10
    broken = {
        f"{path.relative_to(ROOT)} imports {module}"
        for path in stages
        for module in imports(path)
        if module.split(".")[0] in RUNTIME_LIBRARIES or allowed(module, {"streams.worker.runtime"})
    }
    assert not broken, "\n".join(sorted(broken))
