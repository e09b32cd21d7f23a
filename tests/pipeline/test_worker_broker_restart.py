"""A broker restart mid-stream (its own broker, not the session one): the worker reconnects, keeps its state, and
every alert of the known events arrives; every offset commits afterwards."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from deploy.local_kafka import LocalKafka
from schemas.codec import encode_batch
from settings.config import Config
from settings.kafka_clients import producer_config
from tests.conftest import free_port, make_config
from tests.pipeline.helpers import REPO, committed_offsets, end_offsets, spawn, stop, write_config
from tests.pipeline.test_worker_fleet import (
    RULES,
    assert_same_alerts,
    expected_alerts,
    genesis,
    hosts_alerts,
    reads,
)

pytestmark = pytest.mark.kafka


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    broker = LocalKafka(make_config(tmp_path / "state", free_port(), free_port()))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_broker_restart_mid_stream_loses_no_alert(own_broker: LocalKafka, tmp_path: Path) -> None:
    cfg: Config = own_broker.cfg
    cfg.worker.app_id = "restart-worker"
    shutil.rmtree(REPO / "restart-worker-data", ignore_errors=True)  # what workers used to leave in a checkout
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    conf = write_config(cfg, tmp_path / "peregrine.yaml")
    hosts = [f"rb-{i}" for i in range(6)]
    first = [genesis(h) for h in hosts]
    stream = [reads(h, 7 + 4 * k, 4, 1 + k) for k in range(20) for h in hosts]
    want = expected_alerts(cfg, {"rules.yaml": RULES}, first + stream)

    producer = Producer(producer_config(cfg.kafka, **{"message.timeout.ms": 180_000}))
    for b in first:
        producer.produce(cfg.kafka.topics.events, key=b["hostname"].encode(), value=encode_batch(b))
    assert producer.flush(30) == 0
    log = tmp_path / "worker.log"
    worker = spawn(conf, "worker", "--rules", str(rules), "--metrics-port", "0", log=log)
    try:
        assert hosts_alerts(cfg, set(hosts), len(hosts), timeout=120), log.read_text()[-3000:]

        def send() -> None:  # keeps producing through the outage; librdkafka retries until the broker is back
            for i in range(0, len(stream), len(hosts)):
                for b in stream[i:i + len(hosts)]:
                    producer.produce(cfg.kafka.topics.events, key=b["hostname"].encode(), value=encode_batch(b))
                producer.poll(0)
                time.sleep(0.3)

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(2)
        own_broker.stop()
        time.sleep(5)
        own_broker.start()
        sender.join()
        assert producer.flush(120) == 0
        assert worker.poll() is None, log.read_text()[-3000:]
        got = hosts_alerts(cfg, set(hosts), len(want), timeout=180)
        assert_same_alerts(got, want)
        ends = end_offsets(cfg, cfg.kafka.topics.events)
        deadline = time.monotonic() + 60
        while {p: max(o, 0) for p, o in committed_offsets(cfg).items()} != ends:
            assert time.monotonic() < deadline, f"commits stalled: {committed_offsets(cfg)} vs {ends}"
            time.sleep(1)
    finally:
        stop(worker)
    # Faust's (empty, memory-store) data directory is the worker's private temporary one, gone with it
    assert not (REPO / "restart-worker-data").exists()
    assert not list(Path(tempfile.gettempdir()).glob("peregrine-restart-worker-*")), "left behind at exit"
