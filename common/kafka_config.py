"""Kafka connection settings for every client of the project, built in one place.

kafka-python (CLI, simulator, sink, lag probe), aiokafka (the worker's
watchlist service) and Faust (the worker) all get the same bootstrap list,
protocol, SASL login and one TLS context built here, so a setting means the
same thing to each of them. ``Settings.kafka_python_config`` delegates here.
"""

from __future__ import annotations

import ssl
from typing import Any, NoReturn

from common.errors import ConfigError
from common.settings import KAFKA_BOOTSTRAP_TIMEOUT_MS, Settings


def _no_pass_phrase() -> NoReturn:
    # OpenSSL would otherwise prompt for the pass phrase on the terminal
    raise ConfigError(
        "LFR_KAFKA_SSL_KEYFILE is encrypted: set LFR_KAFKA_SSL_KEY_PASSWORD to its pass phrase"
    )


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL / SASL_SSL, or ``None`` for plaintext protocols.

    Verifies the broker's certificate and host name against
    LFR_KAFKA_SSL_CAFILE (the system CAs when unset); presents
    LFR_KAFKA_SSL_CERTFILE/KEYFILE for mutual TLS.
    """
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    except ssl.SSLError as exc:
        raise ConfigError(f"LFR_KAFKA_SSL_CAFILE {cafile} is not a PEM CA bundle: {exc}") from exc
    if settings.kafka_ssl_certfile:
        key_password = settings.kafka_ssl_key_password
        password: Any = (
            key_password.get_secret_value() if key_password is not None else _no_pass_phrase
        )
        try:
            context.load_cert_chain(
                str(settings.kafka_ssl_certfile),
                str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
                password=password,
            )
        except ssl.SSLError as exc:
            raise ConfigError(
                "cannot load the Kafka client certificate/key (LFR_KAFKA_SSL_CERTFILE/KEYFILE): "
                f"wrong LFR_KAFKA_SSL_KEY_PASSWORD, or not a matching PEM pair ({exc.reason})"
            ) from exc
    return context


def _sasl(settings: Settings) -> dict[str, Any]:
    if not settings.kafka_security_protocol.startswith("SASL_"):
        return {}
    password = settings.kafka_sasl_password
    return {
        "sasl_mechanism": settings.kafka_sasl_mechanism,
        "sasl_plain_username": settings.kafka_sasl_username,
        "sasl_plain_password": None if password is None else password.get_secret_value(),
    }


def kafka_python_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for kafka-python clients (producer, consumer, admin)."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
        # a broker that cannot be reached, or refuses the login, fails a command within
        # seconds rather than kafka-python's 30 s (the cause is logged by the client)
        "bootstrap_timeout_ms": KAFKA_BOOTSTRAP_TIMEOUT_MS,
        **_sasl(settings),
    }
    context = ssl_context(settings)
    if context is not None:
        # a ready context: kafka-python then ignores its own ssl_* options
        config["ssl_context"] = context
    return config


def aiokafka_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka clients with the same security as the worker."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
        **_sasl(settings),
    }
    context = ssl_context(settings)
    if context is not None:
        config["ssl_context"] = context
    return config


def faust_credentials(settings: Settings) -> Any:
    """``broker_credentials`` for :class:`faust.App` (``None`` for PLAINTEXT)."""
    import faust

    context = ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL_"):
        sasl = _sasl(settings)
        return faust.SASLCredentials(
            username=sasl["sasl_plain_username"],
            password=sasl["sasl_plain_password"],
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None
