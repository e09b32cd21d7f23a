"""Ships sealed batches to the events topic with confluent-kafka, with a bounded window of unacknowledged records.

Producer settings come from settings.kafka_clients.producer_config (local or Event Hubs profile) plus what
shipping in order needs: no message timeout (librdkafka retries a record until the broker takes it, so an
outage never reorders or loses what is already handed over) and, where the profile is not idempotent, one
request in flight per connection. The window (records and bytes not yet acknowledged) is what bounds memory:
when it is full the caller spills to the journal instead.

Every delivery report is handled: a success counts the events by type; a failure is counted by error and
logged, and handed back to the caller, who decides whether the batch is lost (permanent error: counted as a
drop) or is to be journaled again (purged at stop).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, Producer

from schemas.codec import SCHEMA_HEADER, event_batch_fingerprint
from sensor.batcher import SealedBatch
from sensor.journal import JournalEntry
from sensor.metrics import SensorMetrics
from settings.config import KafkaConfig
from settings.kafka_clients import producer_config, resolve

log = logging.getLogger(__name__)


class _Throttle(logging.Filter):
    """librdkafka repeats a connection failure at every reconnect attempt: say each one once a minute."""

    def __init__(self, every_s: float = 60.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = re.sub(r"\(after \d+ms[^)]*\)", "", record.getMessage())
        now = time.monotonic()
        if now - self._last.get(key, -self.every_s) < self.every_s:
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[key] = now
        return True


kafka_log = logging.getLogger("sensor.kafka")
kafka_log.addFilter(_Throttle())

PURGED = (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT)


@dataclass
class InFlight:
    """A record handed to the producer and not yet acknowledged; `entry` is set when it came from the journal."""

    batch: SealedBatch
    entry: JournalEntry | None = None


DeliveredFn = Callable[[InFlight], None]
FailedFn = Callable[[InFlight, KafkaError], None]


class Publisher:
    """One producer, keyed by host, with delivery reports feeding the caller and the metrics."""

    def __init__(self, kafka: KafkaConfig, hostname: str, metrics: SensorMetrics | None = None,
                 on_delivered: DeliveredFn | None = None, on_failed: FailedFn | None = None,
                 max_inflight_records: int = 64, max_inflight_bytes: int = 64 << 20, **extra: Any) -> None:
        self.topic = kafka.topics.events
        self.key = hostname.encode()
        self.schema = event_batch_fingerprint()  # what this sensor encodes with; a journaled batch may predate it
        self.headers: list[tuple[str, str | bytes | None]] = [(SCHEMA_HEADER, self.schema.encode())]
        self.metrics = metrics
        self.on_delivered = on_delivered
        self.on_failed = on_failed
        self.max_inflight_records = max_inflight_records
        self.max_inflight_bytes = max_inflight_bytes
        resolved = resolve(kafka)
        self.bootstrap = resolved.bootstrap_servers
        conf = producer_config(kafka, **{
            "message.timeout.ms": 0,  # never expire: order and completeness over an outage
            "error_cb": self._on_error,
            "client.id": f"peregrine-sensor-{hostname}",
            "logger": kafka_log,
            "statistics.interval.ms": 5000,  # broker states, for the stall watchdog
            "stats_cb": self._on_stats,
        })
        if not conf.get("enable.idempotence"):
            conf["max.in.flight.requests.per.connection"] = 1  # retries must not reorder without idempotence
        conf.update(extra)
        self._conf = conf
        self.producer = Producer(conf)
        self.inflight: dict[int, InFlight] = {}  # by batch_seq, in send order
        self.inflight_bytes = 0
        self.delivered_records = 0
        self.delivered_events = 0
        self.failed_records = 0
        self.restarts = 0
        self.broker_up = True
        self._returned: list[InFlight] | None = None
        self._last_progress = time.monotonic()
        self._brokers_up_since: float | None = None

    # -- sending -------------------------------------------------------------------------------------------
    @staticmethod
    def _headers_for(schema: str) -> list[tuple[str, str | bytes | None]]:
        return [(SCHEMA_HEADER, schema.encode())]

    def has_room(self, n_bytes: int = 0) -> bool:
        if not self.inflight:
            return True
        return (len(self.inflight) < self.max_inflight_records
                and self.inflight_bytes + n_bytes <= self.max_inflight_bytes)

    def produce(self, batch: SealedBatch, entry: JournalEntry | None = None) -> bool:
        """Hand one batch to the producer; False (nothing sent) when the window or the producer queue is full."""
        if not self.has_room(len(batch.payload)):
            return False
        item = InFlight(batch, entry)
        try:
            headers = self.headers if batch.schema == self.schema else self._headers_for(batch.schema)
            self.producer.produce(self.topic, value=batch.payload, key=self.key, headers=headers,
                                  timestamp=batch.first_ts_ns // 1_000_000,  # 0: now (librdkafka's default)
                                  on_delivery=partial(self._on_delivery, item))
        except BufferError:
            return False
        if not self.inflight:
            self._last_progress = time.monotonic()
        self.inflight[batch.batch_seq] = item
        self.inflight_bytes += len(batch.payload)
        return True

    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve delivery reports and errors."""
        n = int(self.producer.poll(timeout_s))
        if self.metrics is not None:
            self.metrics.producer_queue.set(len(self.producer))
            self.metrics.inflight_bytes.set(self.inflight_bytes)
        return n

    def flush(self, timeout_s: float) -> int:
        """Wait up to timeout_s for every record to be acknowledged; returns how many are still unacknowledged."""
        self.producer.flush(timeout_s)
        self.poll(0)
        return len(self.inflight)

    def abandon(self) -> list[InFlight]:
        """Stop waiting: purge what is unacknowledged and return it, oldest first, for the journal.

        A purged in-flight request may still have reached the broker: after a restart it is sent again
        (at-least-once; consumers drop duplicates by sensor_id and batch_seq).
        """
        self._returned = []
        try:
            self.producer.purge(in_queue=True, in_flight=True, blocking=False)
            self.producer.flush(0)
            self.producer.poll(0)
        finally:
            returned, self._returned = self._returned, None
        returned.extend(self.inflight.values())  # anything without a report yet
        self.inflight.clear()
        self.inflight_bytes = 0
        return sorted(returned, key=lambda item: item.batch.batch_seq)

    def stalled(self, after_s: float = 30.0, outage_s: float = 600.0) -> bool:
        """Records wait with no delivery report for `after_s` although a broker is up (or for `outage_s` in any
        case): the producer is stuck (seen once after a broker restart: the idempotent producer never resent)."""
        if not self.inflight:
            return False
        now = time.monotonic()
        if now - self._last_progress >= outage_s:
            return True
        up = self._brokers_up_since
        return up is not None and now - max(up, self._last_progress) >= after_s

    def restart(self) -> list[InFlight]:
        """Replace a stuck producer: what it held is returned (oldest first) to be sent again by a new one."""
        returned = self.abandon()
        self.producer = Producer(self._conf)
        self.restarts += 1
        self._last_progress = time.monotonic()
        self._brokers_up_since = None
        return returned

    # -- reports -------------------------------------------------------------------------------------------
    def _on_stats(self, stats_json: str) -> None:
        try:
            brokers = orjson.loads(stats_json).get("brokers", {})
        except ValueError:
            return
        up = any(b.get("state") == "UP" and b.get("nodeid", -1) >= 0 for b in brokers.values())
        if not up:
            self._brokers_up_since = None
        elif self._brokers_up_since is None:
            self._brokers_up_since = time.monotonic()

    def _on_delivery(self, item: InFlight, err: KafkaError | None, msg: Message) -> None:
        self._last_progress = time.monotonic()
        if self.inflight.pop(item.batch.batch_seq, None) is not None:
            self.inflight_bytes -= len(item.batch.payload)
        if err is None:
            self.broker_up = True
            self.delivered_records += 1
            self.delivered_events += item.batch.n_events
            if self.metrics is not None:
                self.metrics.count_published(item.batch.types, len(item.batch.payload))
                self.metrics.kafka_up.set(1)
            if self.on_delivered is not None:
                self.on_delivered(item)
            return
        if self._returned is not None and err.code() in PURGED:
            self._returned.append(item)
            return
        self.failed_records += 1
        if self.metrics is not None:
            self.metrics.delivery_failures.labels(err.name()).inc()
        log.error("delivery of batch %d (%d events) to %s failed: %s", item.batch.batch_seq, item.batch.n_events,
                  self.topic, err.str())
        if self.on_failed is not None:
            self.on_failed(item, err)

    def _on_error(self, err: KafkaError) -> None:
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE):
            if self.broker_up:
                log.warning("Kafka at %s is unreachable (%s): journaling until it returns", self.bootstrap, err.str())
            self.broker_up = False
            if self.metrics is not None:
                self.metrics.kafka_up.set(0)
        elif err.fatal():
            log.error("Kafka producer fatal error: %s", err.str())
        else:
            log.warning("Kafka producer: %s", err.str())

    def close(self) -> None:
        self.poll(0)
