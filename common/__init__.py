"""What every package of lfr-stream stands on: settings, the error roots, failure classes.

``schemas`` (the data contract), ``streams`` (worker, simulator, CLI) and
``sinks`` (ClickHouse) all import from here and ``common`` imports none of
them, so the contract does not depend on the application:

- :mod:`common.settings`: every ``LFR_*`` setting, validated once;
- :mod:`common.errors`: :class:`~common.errors.LfrError` and the CLI's one-line errors;
- :mod:`common.failures`: which Kafka, TLS and socket errors the environment causes;
- :mod:`common.kafka_config`: the client configuration for kafka-python, aiokafka and Faust;
- :mod:`common.log_limit`: rate-limited log lines for repeated failures.
"""
