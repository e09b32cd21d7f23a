"""Publishing to the real broker: batches read back decoded, in order, keyed by host, with the schema header."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from schemas.codec import SCHEMA_HEADER, decode_batch, event_batch_fingerprint, schema_fingerprint
from sensor.batcher import Batcher, BatchLimits, SeqStore
from sensor.metrics import SensorMetrics
from sensor.publisher import InFlight, Publisher
from settings.config import Config
from settings.kafka_clients import consumer_config
from tests.sensor.test_batcher import make_event

pytestmark = pytest.mark.kafka


def read_topic(cfg: Config, topic: str, until_events: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """Every record of the topic, decoded, with key/headers/partition kept: polls until `until_events` have
    arrived, then reads on to the end of every partition (so duplicates after them show too)."""
    consumer = Consumer(consumer_config(cfg.kafka, f"reader-{time.monotonic_ns()}"))
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    out: list[dict[str, Any]] = []
    positions = {p: 0 for p in meta.partitions}
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if sum(len(r["batch"]["events"]) for r in out) >= until_events:
                ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in positions}
                if all(positions[p] >= ends[p] for p in positions):
                    break
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            positions[msg.partition() or 0] = (msg.offset() or 0) + 1
            value = msg.value() or b""
            out.append({"batch": decode_batch(value, schema_fingerprint(msg.headers())), "key": msg.key(), "headers": dict(msg.headers() or []),
                        "partition": msg.partition(), "offset": msg.offset(), "size": len(value),
                        "timestamp_ms": msg.timestamp()[1]})
    finally:
        consumer.close()
    return out


def test_published_batches_read_back_in_order(kafka_config: Config, tmp_path: Path) -> None:
    metrics = SensorMetrics()
    delivered: list[int] = []
    publisher = Publisher(kafka_config.kafka, "host-a", metrics,
                          on_delivered=lambda item: delivered.append(item.batch.batch_seq))
    batcher = Batcher("host-a", "host-a/boot", BatchLimits(500, 200_000, 100), SeqStore(tmp_path / "seq.json"))
    events = [make_event(i, type_="openat" if i % 2 else "close") for i in range(5000)]
    batches = batcher.add(events) + batcher.flush()
    for b in batches:
        assert publisher.produce(b)
    assert publisher.flush(30) == 0

    records = read_topic(kafka_config, kafka_config.kafka.topics.events, 5000)
    assert [e["tid"] for r in records for e in r["batch"]["events"]] == list(range(5000))
    assert {r["key"] for r in records} == {b"host-a"} and len({r["partition"] for r in records}) == 1
    assert all(r["headers"][SCHEMA_HEADER] == event_batch_fingerprint().encode() for r in records)
    assert [r["batch"]["batch_seq"] for r in records] == delivered == list(range(len(batches)))
    assert publisher.failed_records == 0
    assert metrics.published.labels("openat")._value.get() == 2500
    assert metrics.records._value.get() == len(batches)


def test_a_failed_delivery_is_counted_and_reported(kafka_config: Config, tmp_path: Path) -> None:
    metrics = SensorMetrics()
    failed: list[tuple[InFlight, str]] = []
    kafka = kafka_config.kafka
    kafka.topics.events = "no-such-topic-for-the-sensor"  # the broker does not auto-create topics
    publisher = Publisher(kafka, "host-a", metrics, on_failed=lambda item, err: failed.append((item, err.name())),
                          **{"topic.metadata.propagation.max.ms": 2000})  # type: ignore[arg-type]
    batcher = Batcher("host-a", "s", BatchLimits(10, 100_000, 100), SeqStore(tmp_path / "seq.json"))
    for b in batcher.add([make_event(i) for i in range(10)]):
        publisher.produce(b)
    publisher.flush(30)
    assert [item.batch.n_events for item, _ in failed] == [10]
    assert publisher.failed_records == 1
    assert metrics.delivery_failures.labels(failed[0][1])._value.get() == 1


def test_batches_journaled_before_a_sensor_upgrade_are_sent_with_their_own_schema(kafka_config: Config,
                                                                                  tmp_path: Path) -> None:
    """An upgraded sensor replays its journal: a batch encoded by the old release (before ProcInfo.vpgid, journaled
    in the format of the time, which named no schema) goes out labelled as such, so processors read it right."""
    import io
    import zlib

    import fastavro
    import orjson

    from schemas.codec import writer_schemas
    from sensor.batcher import SealedBatch
    from sensor.journal import HEADER, MAGIC, SCHEMA_BEFORE_JOURNALED, Journal, segment_name
    from tests.pipeline.helpers import batch, event, proc_info

    old_events = [event(1_700_000_000_000_000_000, "execve", 42, comm="cat", proc=proc_info("/usr/bin/cat", ["cat"]))]
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, writer_schemas()[SCHEMA_BEFORE_JOURNALED], batch("host-a", 0, old_events))
    meta = orjson.dumps({"types": {"execve": 1}, "ts": 0})
    body = meta + buf.getvalue()
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / segment_name(0)).write_bytes(
        HEADER.pack(MAGIC, len(buf.getvalue()), zlib.crc32(body), 0, 0, 1, len(meta)) + body)
    journal = Journal(tmp_path / "j", max_bytes=1 << 20)
    new = Batcher("host-a", "host-a/boot", BatchLimits(500, 200_000, 100), SeqStore(tmp_path / "seq.json"))
    [current] = new.add([make_event(1)]) + new.flush()
    assert journal.append(SealedBatch(1, 1, 1, current.payload, current.types, current.first_ts_ns))

    publisher = Publisher(kafka_config.kafka, "host-a", SensorMetrics())
    while (entry := journal.next_unsent()) is not None:
        assert publisher.produce(entry.batch, entry)
    assert publisher.flush(30) == 0
    records = read_topic(kafka_config, kafka_config.kafka.topics.events, 2)
    assert [r["headers"][SCHEMA_HEADER].decode() for r in records] == [SCHEMA_BEFORE_JOURNALED, event_batch_fingerprint()]
    assert records[0]["batch"]["events"][0]["proc"]["exepath"] == "/usr/bin/cat"
    assert records[0]["batch"]["events"][0]["proc"]["vpgid"] == 0
