"""The HTML report is one page that needs nothing from the network, with every Met column."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pytest

from sinks.report import MET_HEADINGS, summarise_time_to_locate
from sinks.report_html import render_html
from tests.synthetic import generate

NOW = datetime(2025, 10, 3, 12, 0, tzinfo=UTC)
PageRows = tuple[str, list[dict[str, object]]]


@pytest.fixture(scope="module")
def page_rows() -> PageRows:
    """A page of five deployments, the last one still running, and its rows."""
    data = generate(5, deployments=5, start=datetime(2025, 10, 1, 8, tzinfo=UTC))
    rows: list[dict[str, object]] = [data.expected[k] for k in sorted(data.expected)]
    rows[-1] = {**rows[-1], "status": "ACTIVE", "duration_s": None}
    values = {"FIXED_REMOTE": [3600.0, 7200.0, 9000.0], "VAN": [8000.0, 12000.0]}
    ttl = summarise_time_to_locate([(m, "other", v) for m, v in values.items()])
    return render_html(rows, values, ttl, "Europe/London", now=NOW), rows


def test_page_has_three_charts_and_every_met_column(page_rows: PageRows) -> None:
    page, rows = page_rows
    svgs = re.findall(r"<svg\b.*?</svg>", page, flags=re.S)
    assert len(svgs) == 3
    assert all(svg.count("<path") > 10 for svg in svgs)
    headings = re.findall(r"<th>(.*?)</th>", page)
    assert [html.escape(t) for _, t in MET_HEADINGS] == headings[1:17]
    assert page.count("<tr class=") == len(rows)


def test_page_loads_nothing_from_anywhere(page_rows: PageRows) -> None:
    page, _ = page_rows
    assert "<script" not in page and "<link" not in page and "<img" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "@import" not in page
    assert set(re.findall(r"url\((.)", page)) <= {"#"}  # only the SVGs' own clip paths


def test_running_deployment_is_marked_with_its_time_so_far(page_rows: PageRows) -> None:
    page, rows = page_rows
    running = page.split('<tr class="running">', 1)[1].split("</tr>", 1)[0]
    assert str(rows[-1]["deployment_id"]) in running
    assert "+ running" in running


def test_no_deployments_still_gives_a_page_that_says_so() -> None:
    ttl = summarise_time_to_locate([])
    page = render_html([], {}, ttl, "Europe/London", now=NOW)
    assert "no confirmed true match was located" in page
    assert page.count("<svg") == 1 and "<tbody></tbody>" in page
