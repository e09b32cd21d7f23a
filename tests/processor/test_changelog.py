"""The changelog writer's serialisation is Faust's, byte for byte: recovery reads our records as its own."""

from __future__ import annotations

from typing import Any

import faust
import pytest

from processor.changelog import serializers

RECORDS: list[Any] = [
    {"pid": 4242, "ppid": 1, "comm": "sh", "exe": "/bin/sh", "exepath": "/usr/bin/dash", "args": ["-c", "id; cat x"],
     "cwd": "/root", "tty": 34816, "sid": 4242, "pgid": 4242, "vpgid": 4242, "vpid": 4242, "start_ts": 1795940000123456789,
     "env": [], "container_id": "", "uid": 0, "gid": 0, "euid": 0, "loginuid": -1, "cap_permitted": 2**63 - 1,
     "cap_effective": 0, "cap_inheritable": 0, "exe_from_memfd": False, "exe_upper_layer": True, "exe_ino_ctime": 0,
     "exe_ino_mtime": 0, "exit_ts": 0, "exec_ts": 1795940000123456999},
    {"name": "r\u00e9seau \u202e\U0001f600 \"quoted\"\n\ttab\\", "homedir": "/home/\x00x", "shell": ""},
    {"id": "abc", "labels": {"io.kubernetes.pod.name": "web-1", "k": "v"}, "privileged": False, "mounts": [],
     "image": None},
    {}, [], "plain", 0, -2**63, 1.5,
]


@pytest.fixture(scope="module")
def app() -> faust.App:
    return faust.App("changelog-test", broker="kafka://127.0.0.1:1", store="memory://")


def test_table_writes_serialise_to_fausts_own_bytes(app: faust.App) -> None:
    table = app.Table("proctable", default=None, partitions=2, key_type=str)  # as processor/worker.py makes them
    topic = table.changelog_topic
    to_key, to_value = serializers(topic, table.key_serializer, table.value_serializer)
    for key in ("node-1|4242", "n\u00e9|u0", "h|g1", 'q"uote|\\'):
        assert to_key(key) == topic.prepare_key(key, table.key_serializer)[0]
    for rec in RECORDS:
        assert to_value(rec) == topic.prepare_value(rec, table.value_serializer)[0]


def test_other_serialisers_go_through_faust(app: faust.App) -> None:
    topic = app.topic("rawtopic", key_type=bytes, value_type=bytes)
    to_key, to_value = serializers(topic, "raw", "raw")
    assert to_key(b"k|1") == b"k|1" == topic.prepare_key(b"k|1", "raw")[0]
    assert to_value(b"\x00\x01") == b"\x00\x01" == topic.prepare_value(b"\x00\x01", "raw")[0]


def test_alerts_keep_the_partition_fausts_producer_gave_each_host(kafka_config: Any) -> None:
    """Alerts now leave through librdkafka: a host's alerts must still land where aiokafka's (Java's) murmur2 put them,
    so an upgrade keeps each host's alerts in one partition, in order. Checked on the real broker."""
    import asyncio

    from aiokafka.partitioner import DefaultPartitioner
    from confluent_kafka import Consumer, TopicPartition

    from processor.changelog import ChangelogProducer
    from settings.kafka_clients import consumer_config

    topic = kafka_config.kafka.topics.alerts
    producer = ChangelogProducer(kafka_config.kafka)
    hosts = [f"node-{i:03d}".encode() for i in range(40)] + ["n\u00e9".encode(), b"aks-pool-1-vmss000002"]
    for host in hosts:
        producer.send(topic, host, b'{"rule": "x"}')
    asyncio.run(producer.flush())
    consumer = Consumer(consumer_config(kafka_config.kafka, group_id=f"{topic}-check"))
    partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    assert len(partitions) > 1
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    landed: dict[bytes, int] = {}
    for _ in range(20):
        for m in consumer.consume(100, 1.0):
            if m.error() is None:
                landed[m.key()] = m.partition()
        if len(landed) == len(hosts):
            break
    consumer.close()
    faust_choice = DefaultPartitioner()
    assert landed == {h: faust_choice(h, partitions, partitions) for h in hosts}


def test_an_alert_or_state_write_kafka_refuses_fails_the_flush_and_names_the_topic(kafka_config: Any) -> None:
    """What the worker's settle relies on to commit nothing past a lost send: a write Kafka does not acknowledge
    (here: a topic that does not exist, auto-creation off) makes `flush` raise, naming the topic, not pass quietly."""
    import asyncio

    from processor.changelog import ChangelogError, ChangelogProducer

    producer = ChangelogProducer(kafka_config.kafka, librdkafka={"message.timeout.ms": 3000})
    producer.send(kafka_config.kafka.topics.alerts, b"node-1", b'{"rule": "delivered"}')
    missing = kafka_config.kafka.topics.alerts + "-missing"
    producer.send(missing, b"node-1", b'{"rule": "lost"}')
    with pytest.raises(ChangelogError, match=missing):
        asyncio.run(producer.flush())
    producer.send(kafka_config.kafka.topics.alerts, b"node-1", b'{"rule": "after"}')
    asyncio.run(producer.flush())  # the failure was reported once; what follows is acknowledged again
