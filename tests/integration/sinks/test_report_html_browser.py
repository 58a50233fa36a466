"""``lfr report --format html`` on the real 18.16 server, opened in a real headless browser.

Debian's chromium renders the page from a file:// URL with networking off;
the test takes a screenshot and checks the rendered DOM: three non-empty SVG
charts and the table with every one of the Met's columns.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sinks.db import NativeDatabase
from sinks.migrate import migrate
from sinks.report import MET_HEADINGS
from sinks.rollup import rollup
from tests.synthetic import generate

from .conftest import load

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,2600",
)  # fmt: skip


def _browser(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "profile"
    return subprocess.run(
        [CHROMIUM, *BROWSER_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=180, check=True,
    )  # fmt: skip


@pytest.fixture
def report_page(real_stack: Any, clickhouse_database: Callable[[], str], tmp_path: Path) -> Path:
    """The HTML report of four synthetic deployments, written by the ``lfr`` command."""
    name = clickhouse_database()
    settings = real_stack.settings
    db = NativeDatabase(host=settings.clickhouse_host, port=settings.clickhouse_port)
    start = (datetime.now(UTC) - timedelta(days=3)).replace(hour=7, minute=0, microsecond=0)
    migrate(db, name)
    load(db, name, generate(41, deployments=4, start=start))
    rollup(db, name)
    db.close()
    out = tmp_path / "report.html"
    env = {**os.environ, "LFR_CLICKHOUSE_DATABASE": name,
           "LFR_CLICKHOUSE_HOST": settings.clickhouse_host,
           "LFR_CLICKHOUSE_PORT": str(settings.clickhouse_port)}  # fmt: skip
    subprocess.run([sys.executable, "-m", "streams.cli", "report", "--format", "html",
                    "--out", str(out)], env=env, check=True, timeout=300)  # fmt: skip
    return out


def test_html_report_renders_in_a_real_browser(report_page: Path, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run installs it (LFR_PREREQS_EXTRA)")
        pytest.skip("chromium is not installed: `LFR_PREREQS_EXTRA=browser make setup` adds it")
    shot = tmp_path / "report.png"
    _browser(tmp_path, f"--screenshot={shot}", report_page.as_uri())
    dom = _browser(tmp_path, "--dump-dom", report_page.as_uri()).stdout

    svgs = re.findall(r"<svg\b.*?</svg>", dom, flags=re.S)
    assert len(svgs) == 3, "time to locate, alerts and arrests, false-alert rate"
    for svg in svgs:
        assert re.search(r'width="[1-9][0-9.]*pt"', svg), "an SVG without a size"
        assert svg.count("<path") > 10, "an SVG with nothing drawn"
    headings = [html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", dom)]
    assert set(title for _, title in MET_HEADINGS) <= set(headings)
    assert len(re.findall(r"<tr class=", dom)) == 4

    from PIL import Image

    image = Image.open(shot).convert("L")
    assert image.size == (1400, 2600)
    lo, hi = image.getextrema()
    assert lo < 64 and hi > 240, "the screenshot is blank"
    # the charts are drawn: many distinct grey levels, not just text on white
    assert len(set(image.getdata())) > 32
