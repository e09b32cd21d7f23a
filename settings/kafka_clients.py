"""Client settings for every Kafka client we run, derived from one KafkaConfig (local or Event Hubs profile)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from settings.config import KafkaConfig

# Event Hubs closes the connection on records above 1,046,528 bytes; stay clear of it with headroom.
EVENTHUBS_MAX_RECORD_BYTES = 1_000_000


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


def resolve(kafka: KafkaConfig) -> ResolvedKafka:
    eventhubs = kafka.profile == "eventhubs"
    if kafka.profile not in ("local", "eventhubs"):
        raise ValueError(f"kafka.profile: unknown profile '{kafka.profile}' (local, eventhubs)")
    return ResolvedKafka(
        bootstrap_servers=kafka.bootstrap_servers,
        security_protocol=kafka.security_protocol or ("SASL_SSL" if eventhubs else "PLAINTEXT"),
        sasl_mechanism=kafka.sasl_mechanism or ("PLAIN" if eventhubs else ""),
        sasl_username=kafka.sasl_username or ("$ConnectionString" if eventhubs else ""),
        sasl_password=kafka.sasl_password,
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
        # Azure drops idle connections at 240 s; refresh metadata and recycle connections before that.
        conf.update({"metadata.max.age.ms": 180_000, "connections.max.idle.ms": 180_000,
                     "socket.keepalive.enable": True})
    return conf


def producer_config(kafka: KafkaConfig, **extra: Any) -> dict[str, Any]:
    r = resolve(kafka)
    conf = _librdkafka_common(r)
    conf.update({
        "compression.type": r.compression,
        "message.max.bytes": r.max_record_bytes + 48_576,
        "enable.idempotence": not r.eventhubs,  # Event Hubs has no idempotent producer support on every tier
        "acks": "all",
        "linger.ms": 20,
        "request.timeout.ms": 60_000 if r.eventhubs else 30_000,
    })
    conf.update(extra)
    return conf


def consumer_config(kafka: KafkaConfig, group_id: str, **extra: Any) -> dict[str, Any]:
    r = resolve(kafka)
    conf = _librdkafka_common(r)
    conf.update({"group.id": group_id, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
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
        "broker": "kafka://" + ",".join(r.bootstrap_servers.split(",")),
        "producer_compression_type": r.compression if r.compression in ("gzip", "lz4", "snappy", "zstd") else None,
        "producer_max_request_size": r.max_record_bytes + 48_576,
    }
    if r.sasl_mechanism:
        context = ssl.create_default_context(cafile=r.ssl_ca_location or None)
        settings["broker_credentials"] = faust.SASLCredentials(
            username=r.sasl_username, password=r.sasl_password, mechanism=r.sasl_mechanism, ssl_context=context)
    if r.eventhubs:
        settings.update({"topic_allow_declare": False, "topic_disable_leader": True,
                         "producer_request_timeout": 60.0, "broker_request_timeout": 60.0})
    return settings
