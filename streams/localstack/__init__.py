"""The local stack: a real Kafka broker, ClickHouse server and Prometheus.

Run as child processes of ``lfr stack up`` (or, where a Docker engine answers,
as containers via testcontainers), with their data, logs and PID files under
the settings' state dir. Configuration templates live in ``deploy/local/``.
"""
