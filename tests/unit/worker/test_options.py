"""``lfr worker`` takes every default from the settings; a flag given overrides it."""

from __future__ import annotations

from common.settings import Settings
from streams.cli import build_parser
from streams.worker.runtime import WorkerOptions


def options(settings: Settings, *argv: str) -> WorkerOptions:
    args = build_parser().parse_args(["worker", *argv])
    return WorkerOptions.from_settings(
        settings,
        store=args.store,
        max_batch=args.max_batch,
        batch_within_s=args.batch_within,
        allowed_lateness_s=args.allowed_lateness,
        adjudication_hold_s=args.adjudication_hold,
        purge_on_end=args.purge_on_end,
        retire_grace_s=args.retire_grace,
    )


SETTINGS = Settings(
    worker_store="rocksdb://",
    worker_max_batch=7,
    worker_batch_within_s=0.5,
    worker_blas_threads=2,
    allowed_lateness_s=30.0,
    adjudication_hold_s=9.0,
    watchlist_purge_on_end=True,
    watchlist_retire_grace_s=5.0,
    max_payload_bytes=4096,
)


def test_defaults_come_from_the_settings() -> None:
    assert options(SETTINGS) == WorkerOptions(
        store="rocksdb://", max_batch=7, batch_within_s=0.5, blas_threads=2,
        allowed_lateness_s=30.0, adjudication_hold_s=9.0, purge_on_end=True, retire_grace_s=5.0,
        max_payload_bytes=4096,
    )  # fmt: skip


def test_flags_override_the_settings() -> None:
    got = options(SETTINGS, "--max-batch", "3", "--no-purge-on-end", "--retire-grace", "1")
    assert (got.max_batch, got.purge_on_end, got.retire_grace_s) == (3, False, 1.0)
    assert got.store == "rocksdb://"
    assert options(Settings(), "--purge-on-end").purge_on_end is True


def test_purge_on_end_is_on_by_default_and_can_be_turned_off() -> None:
    assert options(Settings()).purge_on_end is True
    assert options(Settings(watchlist_purge_on_end=False)).purge_on_end is False
    assert options(Settings(), "--no-purge-on-end").purge_on_end is False
