"""Client settings for every Kafka client we run, derived from one KafkaConfig (local or Event Hubs profile).

The `eventhubs` profile is one switch for what Azure Event Hubs' Kafka endpoint needs (SASL_SSL, PLAIN,
user `$ConnectionString`, gzip only, records below 1,046,528 bytes, connections recycled before Azure's
240 s idle cut, no transactions, no topic auto-creation); every builder below reads the same `resolve()`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from settings.config import KafkaConfig

# Event Hubs closes the connection on requests above 1,046,528 bytes; Microsoft's guidance is a
# 1,000,000-byte request cap, which leaves room for the produce-request framing around one batch.
EVENTHUBS_CONNECTION_LIMIT_BYTES = 1_046_528
EVENTHUBS_MAX_RECORD_BYTES = 1_000_000
EVENTHUBS_PORT = 9093
EVENTHUBS_USERNAME = "$ConnectionString"
# Azure cuts idle connections at 240 s: refresh metadata and recycle connections before that.
EVENTHUBS_IDLE_MS = 180_000
EVENTHUBS_REQUEST_TIMEOUT_MS = 60_000
PASSWORD_FILE_PREFIX = "file:"
PROFILES = ("local", "eventhubs")


class KafkaSettingsError(ValueError):
    """A Kafka setting that cannot work, naming the key to change."""


class KafkaConnectError(RuntimeError):
    """The broker refused us or could not be reached: one line saying which and what to check."""


@dataclass(frozen=True)
class ResolvedKafka:
    """What a profile means, once: every client builder reads from here."""

    bootstrap_servers: str
    security_protocol: str
    sasl_mechanism: str
    sasl_username: str
    sasl_password: str
    ssl_ca_location: str
    compression: str
    max_record_bytes: int
    eventhubs: bool


def _read_password(raw: str) -> str:
    """`file:/path` reads a mounted secret (a Kubernetes Secret volume); anything else is the secret itself."""
    if not raw.startswith(PASSWORD_FILE_PREFIX):
        return raw
    path = Path(raw[len(PASSWORD_FILE_PREFIX):])
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise KafkaSettingsError(f"kafka.sasl_password: cannot read secret file {path}: {exc.strerror}") from exc


def _with_default_port(bootstrap: str, port: int) -> str:
    """Event Hubs namespaces are given as `<ns>.servicebus.windows.net`; the Kafka endpoint is on 9093."""
    hosts = []
    for host in filter(None, (h.strip() for h in bootstrap.split(","))):
        hosts.append(host if host.rsplit(":", 1)[-1].isdigit() and ":" in host else f"{host}:{port}")
    return ",".join(hosts)


def resolve(kafka: KafkaConfig) -> ResolvedKafka:
    if kafka.profile not in PROFILES:
        raise KafkaSettingsError(f"kafka.profile: unknown profile '{kafka.profile}' ({', '.join(PROFILES)})")
    eventhubs = kafka.profile == "eventhubs"
    password = _read_password(kafka.sasl_password)
    if eventhubs:
        if kafka.compression not in ("", "gzip", "none"):
            raise KafkaSettingsError(f"kafka.compression: Event Hubs accepts gzip only, not '{kafka.compression}'")
        if not password:
            raise KafkaSettingsError("kafka.sasl_password: the eventhubs profile needs the namespace connection string "
                                     "(set PEREGRINE_KAFKA__SASL_PASSWORD or kafka.sasl_password: file:/path)")
    return ResolvedKafka(
        bootstrap_servers=_with_default_port(kafka.bootstrap_servers, EVENTHUBS_PORT) if eventhubs
        else kafka.bootstrap_servers,
        security_protocol=kafka.security_protocol or ("SASL_SSL" if eventhubs else "PLAINTEXT"),
        sasl_mechanism=kafka.sasl_mechanism or ("PLAIN" if eventhubs else ""),
        sasl_username=kafka.sasl_username or (EVENTHUBS_USERNAME if eventhubs else ""),
        sasl_password=password,
        ssl_ca_location=kafka.ssl_ca_location,
        compression="gzip" if eventhubs else (kafka.compression or "lz4"),
        max_record_bytes=min(kafka.max_record_bytes, EVENTHUBS_MAX_RECORD_BYTES) if eventhubs else kafka.max_record_bytes,
        eventhubs=eventhubs,
    )


def _librdkafka_common(r: ResolvedKafka) -> dict[str, Any]:
    conf: dict[str, Any] = {"bootstrap.servers": r.bootstrap_servers, "security.protocol": r.security_protocol}
    if r.sasl_mechanism:
        conf.update({"sasl.mechanisms": r.sasl_mechanism, "sasl.username": r.sasl_username,
                     "sasl.password": r.sasl_password})
    if r.ssl_ca_location:
        conf["ssl.ca.location"] = r.ssl_ca_location
    if r.eventhubs:
        conf.update({"metadata.max.age.ms": EVENTHUBS_IDLE_MS, "connections.max.idle.ms": EVENTHUBS_IDLE_MS,
                     "socket.keepalive.enable": True,
                     # librdkafka never asks for auto-creation, but say so: Event Hubs hubs are pre-created.
                     "allow.auto.create.topics": False})
    return conf


def producer_config(kafka: KafkaConfig, **extra: Any) -> dict[str, Any]:
    r = resolve(kafka)
    conf = _librdkafka_common(r)
    conf.update({
        "compression.type": r.compression,
        "acks": "all",
        "linger.ms": 20,
        "request.timeout.ms": EVENTHUBS_REQUEST_TIMEOUT_MS if r.eventhubs else 30_000,
    })
    if r.eventhubs:
        # librdkafka sends one partition's batch per ProduceRequest: capping the batch and the message at the
        # record cap keeps every request below the 1,046,528 bytes at which Event Hubs drops the connection.
        # Idempotence stays off: after service timeouts it wedges producers (InvalidPidMapping).
        conf.update({"message.max.bytes": r.max_record_bytes, "batch.size": r.max_record_bytes - 16_384,
                     "enable.idempotence": False})
    else:
        conf.update({"message.max.bytes": r.max_record_bytes + 48_576, "enable.idempotence": True})
    conf.update(extra)
    if r.eventhubs and int(conf["message.max.bytes"]) >= EVENTHUBS_CONNECTION_LIMIT_BYTES:
        raise KafkaSettingsError(f"message.max.bytes={conf['message.max.bytes']}: Event Hubs closes the connection "
                                 f"at {EVENTHUBS_CONNECTION_LIMIT_BYTES} bytes")
    if r.eventhubs and "transactional.id" in conf:
        raise KafkaSettingsError("transactional.id: Event Hubs (Standard) has no Kafka transactions")
    return conf


def consumer_config(kafka: KafkaConfig, group_id: str, **extra: Any) -> dict[str, Any]:
    r = resolve(kafka)
    conf = _librdkafka_common(r)
    conf.update({"group.id": group_id, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    if r.eventhubs:
        # Microsoft's recommended consumer timeouts for the Kafka endpoint.
        conf.update({"session.timeout.ms": 30_000, "heartbeat.interval.ms": 3_000, "max.poll.interval.ms": 300_000})
    conf.update(extra)
    return conf


def admin_config(kafka: KafkaConfig) -> dict[str, Any]:
    return _librdkafka_common(resolve(kafka))


def faust_settings(kafka: KafkaConfig) -> dict[str, Any]:
    """faust.App keyword settings (aiokafka underneath)."""
    import ssl

    import faust

    r = resolve(kafka)
    settings: dict[str, Any] = {
        "broker": ",".join("kafka://" + h for h in r.bootstrap_servers.split(",")),
        "producer_compression_type": r.compression if r.compression in ("gzip", "lz4", "snappy", "zstd") else None,
        "producer_max_request_size": r.max_record_bytes if r.eventhubs else r.max_record_bytes + 48_576,
    }
    if r.sasl_mechanism:
        context = ssl.create_default_context(cafile=r.ssl_ca_location or None)
        settings["broker_credentials"] = faust.SASLCredentials(
            username=r.sasl_username, password=r.sasl_password, mechanism=r.sasl_mechanism, ssl_context=context)
    elif r.security_protocol == "SSL":
        settings["broker_credentials"] = faust.SSLCredentials(ssl.create_default_context(cafile=r.ssl_ca_location or None))
    if r.eventhubs:
        settings.update({
            "topic_allow_declare": False, "topic_disable_leader": True,
            "producer_request_timeout": EVENTHUBS_REQUEST_TIMEOUT_MS / 1000, "broker_request_timeout": 60.0,
            "broker_session_timeout": 30.0, "broker_heartbeat_interval": 3.0,
            "consumer_metadata_max_age_ms": EVENTHUBS_IDLE_MS, "producer_metadata_max_age_ms": EVENTHUBS_IDLE_MS,
            "consumer_connections_max_idle_ms": EVENTHUBS_IDLE_MS, "producer_connections_max_idle_ms": EVENTHUBS_IDLE_MS,
        })
    return settings


# -- turning librdkafka's connection errors into one line --------------------------------------------------------

def explain_kafka_error(error: Any, kafka: KafkaConfig | None = None) -> str:
    """One line for a confluent_kafka.KafkaError (or its text): what failed, where, and which key to check."""
    text = error.str() if hasattr(error, "str") else str(error)
    code = error.name() if hasattr(error, "name") else ""
    where = kafka.bootstrap_servers if kafka is not None else "the broker"
    user = ""
    if kafka is not None:
        try:
            user = resolve(kafka).sasl_username
        except KafkaSettingsError:
            user = kafka.sasl_username
    lowered = text.lower()
    if code == "_AUTHENTICATION" or "authentication" in lowered or "sasl" in lowered:
        return (f"kafka: {where}: authentication failed for user '{user}' "
                f"({_first_clause(text)}): check kafka.sasl_password (the Event Hubs connection string)")
    if "ssl" in lowered or "certificate" in lowered or "handshake" in lowered:
        return f"kafka: {where}: TLS failed ({_first_clause(text)}): check kafka.ssl_ca_location and the host name"
    if code in ("_TRANSPORT", "_ALL_BROKERS_DOWN", "_RESOLVE") or "connect" in lowered:
        return f"kafka: {where}: cannot reach the broker ({_first_clause(text)}): check kafka.bootstrap_servers"
    return f"kafka: {where}: {code + ': ' if code else ''}{_first_clause(text)}"


def _first_clause(text: str) -> str:
    """librdkafka errors carry a `host:port/id: ` prefix and a `(after N ms in state X)` tail; keep the reason."""
    line = text.strip().splitlines()[0] if text.strip() else text
    if ": " in line and "/" in line.split(": ", 1)[0]:
        line = line.split(": ", 1)[1]
    return line.split(" (after ", 1)[0].strip()


_PROBE_LOG = logging.getLogger("peregrine.kafka.probe")
_PROBE_LOG.addHandler(logging.NullHandler())
_PROBE_LOG.propagate = False


def probe(kafka: KafkaConfig, timeout_s: float = 15.0) -> list[str]:
    """Connect and authenticate like our clients do; return the topic names or raise KafkaConnectError (one line)."""
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AdminClient

    errors: list[Any] = []
    last: Any = "no answer"
    conf = admin_config(kafka)
    conf["error_cb"] = errors.append
    conf["logger"] = _PROBE_LOG  # the one-line error below replaces librdkafka's retry spam
    admin = AdminClient(conf)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            return sorted(admin.list_topics(timeout=min(2.0, max(0.1, deadline - time.monotonic()))).topics)
        except Exception as exc:  # KafkaException: the cause is in error_cb
            last = exc.args[0] if exc.args else exc
        admin.poll(0.1)  # serves error_cb
        fatal = [e for e in errors if getattr(e, "code", lambda: None)() == KafkaError._AUTHENTICATION]
        if fatal:
            raise KafkaConnectError(explain_kafka_error(fatal[-1], kafka))
    raise KafkaConnectError(explain_kafka_error(errors[-1] if errors else last, kafka))
