"""The ground truth's arithmetic equals ``lfr report``'s, bit for bit, on the same counts.

The e2e test compares ClickHouse's report to the truth field by field; this
pins the derived figures (rates, minutes, means, medians) so that the only
thing left to differ is the counts themselves.
"""

from __future__ import annotations

from typing import Any

from sinks.report import REPORT_KEYS, derive, summarise_time_to_locate
from streams.simulator.truth import to_ms


def test_report_keys_are_the_sinks(small_run: dict[str, Any]) -> None:
    for row in small_run["truth"]["deployments"]:
        assert tuple(row) == REPORT_KEYS


def test_derived_columns_equal_sinks_report(small_run: dict[str, Any]) -> None:
    builder = small_run["builder"]
    for row in small_run["truth"]["deployments"]:
        window = builder.windows[row["deployment_id"]]
        raw = {k: v for k, v in row.items() if k in REPORT_KEYS}
        raw["duration_ms"] = to_ms(window["ends_at"]) - to_ms(window["starts_at"])
        raw["starts_at_epoch_ms"] = to_ms(window["starts_at"])
        # the aggregates store seconds (the worker's located_at - wanted_since, / 1000), sorted
        raw["time_to_locate_values_s"] = sorted(
            v / 1000 for v in builder.located_ms(row["deployment_id"])
        )
        assert derive(raw) == row


def test_time_to_locate_equals_sinks_summary(small_run: dict[str, Any]) -> None:
    by_pair, _ = small_run["builder"].located()
    rows = [(m, c, [v / 1000 for v in values]) for (m, c), values in by_pair.items()]
    assert summarise_time_to_locate(rows) == small_run["truth"]["time_to_locate"]
