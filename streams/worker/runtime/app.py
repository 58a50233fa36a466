"""The Faust app of the worker and :func:`build_worker`, which puts the runtime together."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import faust

from common.kafka_config import faust_credentials
from common.settings import Settings
from schemas.codec import Codec
from streams.worker.deletion import DeletionPolicy
from streams.worker.detections import SITE_CLOCK_TABLE, DetectionContext
from streams.worker.matching import use_large_product_threads
from streams.worker.pseudonym import Pseudonymiser
from streams.worker.runtime.agents import Handlers, install_agents
from streams.worker.runtime.guard import AgentGuard
from streams.worker.runtime.health import HealthServer
from streams.worker.runtime.inputs import DetectionsProgress, detections_ownership
from streams.worker.runtime.outputs import StageWriter
from streams.worker.runtime.reference_service import ReferenceService
from streams.worker.runtime.tables import Changelogs, create_tables
from streams.worker.runtime.timers import install_timers

SESSION_TIMEOUT_S = 10.0
"""A SIGKILLed worker's partitions move after this (Faust's default, 60 s, stalled them)."""
HEARTBEAT_INTERVAL_S = 3.0
"""A third of the session timeout, as Kafka advises."""
PRODUCER_BATCH_BYTES = 256 * 1024
"""Largest producer batch: a whole detections batch per partition, well under 1 MB requests."""


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """Worker tuning; :meth:`from_settings` takes every default from :class:`Settings`."""

    store: str = "memory://"
    max_batch: int = 500
    batch_within_s: float = 0.02
    blas_threads: int = 1
    allowed_lateness_s: float | None = None
    adjudication_hold_s: float = 300.0
    purge_on_end: bool = True
    retire_grace_s: float = 120.0
    max_payload_bytes: int = 1 << 20

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> WorkerOptions:
        """Options from the settings; an override that is ``None`` keeps the setting."""
        values: dict[str, Any] = {
            "store": settings.worker_store,
            "max_batch": settings.worker_max_batch,
            "batch_within_s": settings.worker_batch_within_s,
            "blas_threads": settings.worker_blas_threads,
            "allowed_lateness_s": settings.allowed_lateness_s,
            "adjudication_hold_s": settings.adjudication_hold_s,
            "purge_on_end": settings.watchlist_purge_on_end,
            "retire_grace_s": settings.watchlist_retire_grace_s,
            "max_payload_bytes": settings.max_payload_bytes,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def allowed_lateness_ms(self) -> int | None:
        """The allowed lateness in milliseconds (``None``: any)."""
        lateness = self.allowed_lateness_s
        return None if lateness is None else int(lateness * 1000)


@dataclass(slots=True)
class WorkerRuntime:
    """The Faust app and the services that run beside it."""

    app: faust.App
    reference: ReferenceService
    health: HealthServer

    @property
    def services(self) -> list[Any]:
        """Services to hand to :class:`faust.Worker` next to the app."""
        return [self.reference, self.health]


def make_app(settings: Settings, options: WorkerOptions) -> faust.App:
    """The Faust app with the subset of faust-streaming the worker relies on (see the package)."""
    datadir = settings.state_dir / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    return faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers],
        broker_credentials=faust_credentials(settings),
        store=options.store,
        datadir=str(datadir / "{conf.name}"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.kafka_replication_factor,
        processing_guarantee="at_least_once",
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=HEARTBEAT_INTERVAL_S,
        # static membership: a restart under the same id keeps the assignment
        consumer_group_instance_id=settings.worker_group_instance_id,
        producer_acks=-1,
        # A detection is ~1.1 KiB: let one fetch carry several batches.
        consumer_max_fetch_size=8 * 1024 * 1024,
        # A detections batch goes out as one producer batch per partition
        # (send_grouped): 500 scans are ~40 KiB, over aiokafka's 16 KiB.
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        # Standbys would put other workers' partitions into the same in-memory
        # tables, and the expiry timers must only expire their own partitions.
        table_standby_replicas=0,
        # A stop or rebalance must not wait for records that will never be
        # acknowledged (a batch whose handler failed for good, or one
        # cancelled half done): they are simply not committed.
        stream_wait_empty=False,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        autodiscover=False,
    )


def make_reference(
    app: faust.App,
    settings: Settings,
    options: WorkerOptions,
    codec: Codec,
    progress: DetectionsProgress,
) -> ReferenceService:
    """The broadcast service holding every window and watchlist."""
    return ReferenceService(
        settings,
        codec=codec,
        policy=DeletionPolicy(
            grace_s=options.retire_grace_s, lateness_ms=options.allowed_lateness_ms
        ),
        purge_on_end=options.purge_on_end,
        ownership=detections_ownership(app, settings.topic_detections, settings.partitions),
        behind=progress.behind,
    )


def detection_context(
    settings: Settings, options: WorkerOptions, codec: Codec, reference: ReferenceService,
    site_clock: Any,
) -> DetectionContext:  # fmt: skip
    """What the detections stage reads: the broadcast view, the site clock, the pseudonym key."""
    view = reference.reference
    return DetectionContext(
        windows_of=view.windows_of,
        watchlist=view.snapshot,
        high_water_of=lambda site_id: site_clock.get(site_id.encode()),
        pseudonymiser=Pseudonymiser(settings.require_pseudonym_key()),
        allowed_lateness_ms=options.allowed_lateness_ms,
        is_deleted=view.is_deleted,
        deleted_by=view.deleted_by,
        decode=codec.decode_millis,
    )


def build_worker(settings: Settings, options: WorkerOptions | None = None) -> WorkerRuntime:
    """The Faust app with its tables, agents and timers, and the services beside it."""
    options = options or WorkerOptions.from_settings(settings)
    use_large_product_threads(options.blas_threads)
    app = make_app(settings, options)
    codec = Codec(max_payload_bytes=options.max_payload_bytes)
    progress = DetectionsProgress(app, settings.topic_detections, slack=options.max_batch)
    reference = make_reference(app, settings, options, codec, progress)
    tables = create_tables(app, settings)
    writer = StageWriter(app, settings, codec, Changelogs(app, tables))
    ctx = detection_context(settings, options, codec, reference, tables[SITE_CLOCK_TABLE])
    guard = AgentGuard()
    outcome_tables = asyncio.Lock()  # the alerts and pending tables: one writer at a time
    handlers = Handlers(writer, tables, codec, reference, ctx, progress, outcome_tables)
    install_agents(
        app, settings, handlers, guard, max_batch=options.max_batch, within_s=options.batch_within_s
    )
    install_timers(app, settings, writer, tables, options.adjudication_hold_s, outcome_tables)
    health = HealthServer(
        settings.worker_metrics_port, ready=lambda: reference.ready and not guard.failed
    )
    return WorkerRuntime(app=app, reference=reference, health=health)
