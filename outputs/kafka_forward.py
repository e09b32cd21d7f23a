"""Kafka forward: the alert JSON to a topic on another cluster (e.g. an Event Hubs namespace's Kafka endpoint).

Acknowledged when the target broker confirmed every record (delivery reports, acks=all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Producer

from outputs.base import Output
from outputs.falco_format import json_bytes
from outputs.model import Alert, DeliveryError
from settings.config import ConfigError, KafkaConfig
from settings.kafka_clients import producer_config


@dataclass
class KafkaForwardOptions:
    bootstrap_servers: str = ""
    topic: str = ""
    profile: str = "local"  # local | eventhubs (SASL_SSL PLAIN, $ConnectionString, gzip)
    security_protocol: str = ""
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_ca_location: str = ""
    compression: str = ""
    key: str = "hostname"  # hostname | uuid | none
    timeout: float = 30.0

    def check(self, where: str) -> None:
        if not self.bootstrap_servers or not self.topic:
            raise ConfigError(f"{where}: bootstrap_servers and topic are required")
        if self.key not in ("hostname", "uuid", "none"):
            raise ConfigError(f"{where}.key: hostname, uuid or none, got '{self.key}'")

    def kafka(self) -> KafkaConfig:
        return KafkaConfig(bootstrap_servers=self.bootstrap_servers, profile=self.profile,
                           security_protocol=self.security_protocol, sasl_mechanism=self.sasl_mechanism,
                           sasl_username=self.sasl_username, sasl_password=self.sasl_password,
                           ssl_ca_location=self.ssl_ca_location, compression=self.compression)


class KafkaForwardOutput(Output):
    type_name = "kafka"
    Options = KafkaForwardOptions
    batch_max = 500
    _producer: Producer | None = None

    async def start(self) -> None:
        # Records expire when the flush below gives up, so a retried batch is not also delivered late.
        timeout_ms = int(self.options.timeout * 1000)
        self._producer = Producer(producer_config(self.options.kafka(), **{"message.timeout.ms": timeout_ms}))

    async def send(self, alerts: list[Alert]) -> None:
        assert self._producer is not None
        o = self.options
        errors: list[str] = []

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        for alert in alerts:
            key = None if o.key == "none" else str(alert.get(o.key, "")).encode()
            self._producer.produce(o.topic, json_bytes(alert), key=key, on_delivery=on_delivery)
            self._producer.poll(0)
        left = self._producer.flush(o.timeout + 5)
        if errors or left:
            raise DeliveryError(f"kafka {o.bootstrap_servers}/{o.topic}: {left} unconfirmed, errors: {errors[:3]}")

    async def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)
