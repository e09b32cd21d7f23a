"""Table changelog writes (and the worker's alerts and dead letters) through librdkafka, batched per settle.

Faust sends each table write as its own message through its ProducerBuffer task and aiokafka: about four event-loop
turns and ~25 µs of Python per write, a third of a worker's CPU with an exec-heavy host mix (BENCHMARKS.md,
Processor). Here the write-back stores hand their changed keys to a confluent-kafka producer (one C call each) and
the worker waits for all of them at once before it commits offsets. Keys and values are serialised to the very bytes
the table's own changelog topic would write, so Faust's recovery reads these records exactly like its own.

Alerts and dead letters take the same producer (`send`) and the same wait: through Faust's aiokafka producer an
alert cost a few hundred microseconds of the worker's main thread. Keys are partitioned with murmur2, as Faust's
producer and Java clients do, so a host's alerts stay on the partition they always went to.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, Producer
from faust.utils import json as faust_json

from settings.config import KafkaConfig
from settings.kafka_clients import producer_config

FAUST_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z  # faust.utils.json.dumps's, with orjson
Send = Callable[[int, str, Any], None]  # (events partition, table key, value or None for a delete)
Headers = list[tuple[str, str | bytes | None]]


class ChangelogError(RuntimeError):
    """A changelog write Kafka did not acknowledge: the worker must not commit past it."""


def serializers(topic: Any, key_ser: Any, value_ser: Any) -> tuple[Callable[[Any], bytes], Callable[[Any], bytes]]:
    """Key and value to bytes, as the changelog topic's own `prepare_key`/`prepare_value` would write them.

    Faust's path costs ~8 µs per write (codec lookup, model checks) for what is, with the tables' JSON serialisers,
    one `orjson.dumps` with Faust's options: that call is used where Faust itself serialises JSON with orjson (the
    bytes are identical: tests/processor/test_changelog.py), Faust's own path everywhere else."""
    def faust_key(key: Any) -> bytes:
        return topic.prepare_key(key, key_ser)[0]  # type: ignore[no-any-return]

    def faust_value(value: Any) -> bytes:
        return topic.prepare_value(value, value_ser)[0]  # type: ignore[no-any-return]

    if faust_json.orjson is None:
        return faust_key, faust_value
    fast = functools.partial(orjson.dumps, option=FAUST_ORJSON_OPTIONS)
    return (fast if key_ser == "json" else faust_key), (fast if value_ser == "json" else faust_value)


@dataclass
class ChangelogProducer:
    kafka: KafkaConfig
    flush_timeout_s: float = 60.0
    errors: list[str] = field(default_factory=list)
    sent: int = 0
    librdkafka: dict[str, Any] = field(default_factory=dict)  # settings over producer_config's (tests: timeouts)

    def __post_init__(self) -> None:
        # Delivery reports only for failures: ~12k successful ones a second at 100k events/s would each run
        # `_delivered` for nothing; `flush` still counts what is unacknowledged and every failure still lands here.
        self.producer = Producer(producer_config(self.kafka, **{
            "linger.ms": 5, "partitioner": "murmur2_random", "delivery.report.only.error": True, **self.librdkafka}))

    def send(self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None) -> None:
        """One alert or dead letter; acknowledged (or raised) by the next `flush`."""
        self._produce(topic, key, value, headers=headers)

    def sender(self, table: Any) -> Send:
        """A `Send` for one Faust table: its changelog topic, its key and value serialisers."""
        topic = table.changelog_topic
        name = topic.get_topic_name()
        to_key, to_value = serializers(topic, table.key_serializer, table.value_serializer)
        produce = self._produce

        def send(partition: int, key: str, value: Any) -> None:
            produce(name, to_key(key), None if value is None else to_value(value), partition=partition)

        return send

    def _produce(self, topic: str, key: bytes | None, value: bytes | None, **options: Any) -> None:
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, on_delivery=self._delivered, **options)
                break
            except BufferError:  # librdkafka's queue is full: let it drain, never drop a write
                self.producer.poll(0.1)
        self.sent += 1

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.errors.append(f"{msg.topic()}:{msg.partition()}: {err}")

    async def flush(self) -> None:
        """Wait until every write so far is acknowledged; raises ChangelogError if any was not."""
        remaining = await asyncio.get_running_loop().run_in_executor(None, self.producer.flush, self.flush_timeout_s)
        if remaining or self.errors:
            detail = "; ".join(self.errors[:3]) or f"{remaining} writes unacknowledged after {self.flush_timeout_s}s"
            self.errors.clear()
            raise ChangelogError(f"table changelog writes failed: {detail}")

    def close(self) -> None:
        self.producer.flush(self.flush_timeout_s)
