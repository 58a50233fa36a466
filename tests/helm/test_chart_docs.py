"""The chart's README, NOTES and the image agree with the chart."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.helm.conftest import CHART, ROOT
from tests.helm.values_table import render_readme

VALUES_TEXT = (CHART / "values.yaml").read_text()
README = (CHART / "README.md").read_text()
DOCKERFILE = (ROOT / "deploy/Dockerfile").read_text()


def test_every_documented_value_is_in_the_readme_table() -> None:
    params = re.findall(r"## @param (\S+) ", VALUES_TEXT)
    assert len(params) > 100
    missing = [p for p in params if f"| `{p}` |" not in README]
    assert missing == []


def test_every_top_level_value_is_documented() -> None:
    values = yaml.safe_load(VALUES_TEXT)
    for key, value in values.items():
        documented = f"`{key}`" in README or f"`{key}." in README
        assert documented, key
        if isinstance(value, dict) and key in {"config", "secrets"}:
            for sub in value:
                assert f"`{key}.{sub}" in README, f"{key}.{sub}"


def test_image_user_matches_the_chart_security_context() -> None:
    values = yaml.safe_load(VALUES_TEXT)
    uid = values["containerSecurityContext"]["runAsUser"]
    assert re.search(rf"^USER {uid}:{uid}$", DOCKERFILE, re.M)
    assert re.search(r'^ENTRYPOINT \["lfr"\]$', DOCKERFILE, re.M)
    mount = values["worker"]["persistence"]["mountPath"]
    assert f"LFR_STATE_DIR={mount}" in DOCKERFILE


def test_readme_values_tables_are_generated_from_values_yaml() -> None:
    # regenerate with: .venv/bin/python -m tests.helm.values_table
    assert render_readme(README, VALUES_TEXT) == README


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_image_installs_a_hashed_lock_of_the_runtime_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {
        _name(r) for r in [*project["dependencies"], *project["optional-dependencies"]["rocksdb"]]
    }
    lock = (ROOT / "deploy" / "requirements.lock").read_text()
    pinned = {
        m.group(1).lower().replace("_", "-"): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9._-]+)==(\S+) \\$", lock, re.M)
    }
    assert runtime <= set(pinned), (
        f"not in deploy/requirements.lock: {sorted(runtime - set(pinned))}"
    )
    # every pin carries hashes, so pip can run with --require-hashes
    blocks = re.split(r"\n(?=[A-Za-z0-9._-]+==)", re.sub(r"\A(#.*\n|\n)+", "", lock))
    assert all("--hash=sha256:" in block for block in blocks)
    # chDB serves the tests only
    assert "chdb" in {_name(r) for r in project["optional-dependencies"]["test"]}
    assert "chdb" not in pinned and "chdb" not in runtime
    assert "--require-hashes" in DOCKERFILE and "requirements.lock" in DOCKERFILE
    assert re.search(r"^FROM \$\{BASE_IMAGE\}", DOCKERFILE, re.M)
