"""The Event Hubs profile against an Event Hubs-like broker: SASL_SSL/PLAIN/$ConnectionString, gzip, size cap, errors."""

from __future__ import annotations

import asyncio
import os

import pytest
from confluent_kafka import Consumer, KafkaException, Producer

from settings.kafka_clients import (
    EVENTHUBS_CONNECTION_LIMIT_BYTES,
    KafkaConnectError,
    KafkaSettingsError,
    consumer_config,
    faust_settings,
    probe,
    producer_config,
)
from tests.deploy.conftest import EventHubsLike, stored_batches

pytestmark = pytest.mark.kafka
GZIP = 1


def _produce(conf: dict[str, object], topic: str, values: list[bytes]) -> list[str]:
    """Produce and wait; returns the delivery errors (empty when every record was acknowledged)."""
    errors: list[str] = []
    producer = Producer(conf)
    for i, value in enumerate(values):
        producer.produce(topic, value=value, key=str(i % 3).encode(),
                         on_delivery=lambda err, _msg: errors.append(str(err)) if err else None)
        producer.poll(0)
    assert producer.flush(60) == 0, "records still queued after 60 s"
    return errors


def _consume(conf: dict[str, object], topic: str, count: int) -> list[bytes]:
    consumer = Consumer(conf)
    consumer.subscribe([topic])
    values: list[bytes] = []
    try:
        for _ in range(600):
            if len(values) >= count:
                break
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                values.append(msg.value() or b"")
    finally:
        consumer.close()
    return values


def test_topics_exist_before_any_client_and_nothing_is_auto_created(eventhubs: EventHubsLike) -> None:
    kc = eventhubs.client_config()
    topics = set(probe(kc))
    assert {kc.topics.events, kc.topics.alerts, kc.topics.rules} <= topics
    errors: list[str] = []
    producer = Producer(producer_config(kc, **{"message.timeout.ms": 3000}))
    producer.produce("not-in-the-topology", b"x", on_delivery=lambda err, _m: errors.append(err.name()) if err else None)
    producer.flush(10)
    assert errors == ["_UNKNOWN_TOPIC"] or errors == ["UNKNOWN_TOPIC_OR_PART"] or errors == ["_MSG_TIMED_OUT"]
    assert "not-in-the-topology" not in probe(kc)


def test_round_trip_through_the_eventhubs_profile_is_gzip(eventhubs: EventHubsLike) -> None:
    kc = eventhubs.client_config()
    topic = kc.topics.hunt
    values = [f"alert {i} ".encode() * 50 for i in range(200)]
    assert _produce(producer_config(kc), topic, values) == []
    got = _consume(consumer_config(kc, "t-round-trip"), topic, len(values))
    assert sorted(got) == sorted(values)
    batches = stored_batches(eventhubs.log_dir(topic, 0))
    assert batches and {b.compression for b in batches} == {GZIP}


def test_wrong_password_is_refused_in_one_line(eventhubs: EventHubsLike) -> None:
    wrong = eventhubs.password.replace("SharedAccessKey=", "SharedAccessKey=x")
    with pytest.raises(KafkaConnectError) as refused:
        probe(eventhubs.client_config(wrong), timeout_s=20)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"kafka: 127.0.0.1:{eventhubs.sasl_port}: authentication failed for user '$ConnectionString'")
    assert "kafka.sasl_password" in message
    assert "SharedAccessKey" not in message  # never echo the secret


def test_no_record_batch_above_the_cap_reaches_the_broker(eventhubs: EventHubsLike) -> None:
    kc = eventhubs.client_config()
    topic = kc.topics.events_dlq  # one partition: every batch lands in one log
    # Incompressible payloads, lingering so that the producer packs as much as it may into each batch.
    values = [os.urandom(300_000) for _ in range(24)] + [os.urandom(990_000) for _ in range(3)]
    conf = producer_config(kc, **{"linger.ms": 500, "message.timeout.ms": 30_000})
    assert _produce(conf, topic, values) == []
    with pytest.raises(KafkaException, match="MSG_SIZE_TOO_LARGE"):
        Producer(conf).produce(topic, os.urandom(1_100_000))
    batches = stored_batches(eventhubs.log_dir(topic, 0))
    assert sum(1 for b in batches) >= 9  # several records per batch happened, and none crossed the cap
    assert max(b.size for b in batches) < EVENTHUBS_CONNECTION_LIMIT_BYTES
    sizes = [len(v) for v in _consume(consumer_config(kc, "t-size"), topic, len(values))]
    assert sorted(sizes) == sorted(len(v) for v in values)


def test_the_broker_really_drops_requests_above_the_cap(eventhubs: EventHubsLike) -> None:
    """Control: without the profile's cap, a 1.5 MB record is not accepted, as on Event Hubs."""
    kc = eventhubs.client_config()
    conf = {**producer_config(kc), "message.max.bytes": 2_000_000, "message.timeout.ms": 8_000}
    errors = _produce(conf, kc.topics.events_dlq, [os.urandom(1_500_000)])
    assert errors, "the Event Hubs-like broker accepted a request above 1,046,528 bytes"


def test_the_profile_refuses_settings_event_hubs_cannot_take(eventhubs: EventHubsLike) -> None:
    kc = eventhubs.client_config()
    with pytest.raises(KafkaSettingsError, match="message.max.bytes"):
        producer_config(kc, **{"message.max.bytes": 1_048_576})
    with pytest.raises(KafkaSettingsError, match="transactions"):
        producer_config(kc, **{"transactional.id": "x"})
    kc.compression = "lz4"
    with pytest.raises(KafkaSettingsError, match="gzip only"):
        producer_config(kc)


def test_faust_producer_sends_gzip_below_the_cap(eventhubs: EventHubsLike) -> None:
    """Faust (aiokafka) gets the same profile: TLS with our CA, SASL PLAIN, gzip, and the record cap."""
    import faust

    kc = eventhubs.client_config()
    topic = kc.topics.hunt
    before = len(stored_batches(eventhubs.log_dir(topic, 0)))
    settings = faust_settings(kc)
    assert settings["topic_allow_declare"] is False and settings["topic_disable_leader"] is True
    app = faust.App(f"eh-faust-{os.getpid()}", web_enabled=False, **settings)

    async def send_all() -> None:
        producer = app.producer
        await producer.start()
        try:
            futures = [await producer.send(topic, b"k", os.urandom(size), partition=0, timestamp=None, headers=None)
                       for size in [200_000] * 12 + [980_000] * 2]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(send_all())
    new = stored_batches(eventhubs.log_dir(topic, 0))[before:]
    assert len(new) >= 3 and {b.compression for b in new} == {GZIP}
    assert max(b.size for b in new) < EVENTHUBS_CONNECTION_LIMIT_BYTES
