"""Where the worker meets Faust and Kafka; everything that decides a result lives outside.

The stages (:mod:`streams.worker.windows`, ``detections``, ``adjudications``,
``expiry``, ``reference``) are plain functions from a batch of
:class:`~streams.worker.source.SourceRecord` to a
:class:`~streams.worker.stage.StageResult`. This package feeds them and
carries out what they return:

``app``               the Faust app's settings and :func:`build_worker`
``agents``            one input per topic, each through a ``batch_source``: records
                      in, stage, result out
``timers``            table expiry, fetch watchdog, lag gauge, segment roll markers
``inputs``            Faust/aiokafka records -> SourceRecord; which sites this worker owns
``outputs``           a result -> one producer batch per partition, acks, then tables
``tables``            the four tables and their writes
``reference_service`` the broadcast consumer of lfr.watchlist and lfr.operations (aiokafka)
``batch_source``      an input topic's fetched records handed over in whole batches
``guard``             no offset committed past a record whose work failed
``fetch_watchdog``, ``lag``, ``segment_roll``, ``health``  the timers' and probes' parts

faust-streaming 0.15 is used for its consumer group, rebalances, agents and
plain tables. What the worker does differently, and the upstream defect or
limitation each answers:

- ``processing_guarantee="at_least_once"``, agent concurrency 1, exactness
  from deterministic ids and idempotent sinks: ``exactly_once`` can hang
  table recovery (faust-streaming #47).
- Reference data is a broadcast consumer (``reference_service``), not a
  GlobalTable: with several workers a GlobalTable misses records
  (robinhood/faust #541, #716; faust-streaming #212).
- Raw key and value serializers, project codec in the stages: a Faust decode
  error would crash the agent instead of dead-lettering the record.
- ``tables.byte_keyed``: a table's changelog key serializer follows its
  ``key_type`` (JSON for bytes), so without it a changelog partition would
  differ from the source record's (changelog serializers default to JSON:
  robinhood/faust #148).
- ``tables.Changelogs``: a ``use_partitioner`` table write raises inside
  aiokafka while the producer has no metadata for the changelog (fresh
  broker, refresh during a broker restart); every write first awaits it.
- ``outputs``: produce through the aiokafka producer inside Faust
  (``app.producer._ensure_producer()``, private) in one batch per partition;
  ``Topic.send`` costs a coroutine and future per message and has no batch
  call.
- ``guard.AgentGuard``: Faust acknowledges, then commits, the event an agent
  raised on (robinhood/faust #604, faust-streaming #315), so no input is a
  Faust agent (see ``batch_source``); every handler's work is retried in
  place, then the worker stops for its supervisor to restart it, with the
  batch unacknowledged. A ``CancelledError`` that did not cancel the
  handler's own task is retried like any failure.
- ``fetch_watchdog``: after a SIGKILL and restart Faust can fetch records
  during table recovery and drop them before the agent; the partition never
  commits again (faust-streaming #606, robinhood/faust #681). The batch
  sources seek such records back themselves; the watchdog stays as a second
  line. It reads the consumer's private ``_committed_offset``, ``_acked``
  and ``_unacked_messages`` and seeks back to the committed offset.
- ``lag.LagGauge`` reads the private ``consumer._committed_offset`` (Faust
  has no public committed-offset view without a broker call).
- ``batch_source``: Faust moves every record through its per-message path
  (an Event, a queue put and get, a locked ack each; about a quarter of the
  worker's CPU on lfr.detections) and no stream API skips it
  (``take_events`` only batches what the agent body sees); that path also
  drops records fetched for a paused partition, which stalled
  lfr.adjudications partitions after restarts. A subclass of its aiokafka
  ``Consumer`` diverts every input topic's records from
  ``_wait_next_records`` (private) to that topic's handler in batches and
  acknowledges them through the same private ``_acked`` bookkeeping Faust's
  commits read (``docs/faust-batch-source.md``). It puts a placeholder per
  buffered chunk into ``_unacked_messages``, so ``fetch_watchdog`` and
  ``lag`` read the input partitions as before.
- ``batch_source.BatchConsumer`` also shortens two of Faust's fetch waits
  that left a fully loaded worker idle a third of the time: the fetch call
  while a partition is paused for a full buffer (Faust leaves it out and
  waits 1 s for the others), and the broker's hold on an empty fetch
  (Faust passes ``fetch_max_wait_ms=1500``; aiokafka sends one fetch per
  broker at a time, so the busy partition's next fetch queued behind it).
  The second sets the aiokafka consumer's private ``_fetch_max_wait_ms``
  before it starts (checked at creation).
- App settings: session timeout 10 s (Faust's 60 s left a SIGKILLed worker's
  partitions unserved for a minute), no table standbys (they would mix other
  workers' partitions into the in-memory tables the expiry timers sweep).
"""

from __future__ import annotations

from streams.worker.runtime.app import WorkerOptions, WorkerRuntime, build_worker

__all__ = ["WorkerOptions", "WorkerRuntime", "build_worker"]
