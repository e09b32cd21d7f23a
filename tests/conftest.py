"""Shared fixtures: a real local Kafka broker per test session, on free ports, with its own state directory."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local_kafka import LocalKafka
from settings.config import Config, KafkaConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
FALCO_RULES_DIR = (REPO_ROOT / ".." / "shared" / "falco-rules").resolve()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_config(state_dir: Path, port: int, controller_port: int, **kafka: object) -> Config:
    cfg = Config(state_dir=str(state_dir), hostname="test-host")
    cfg.kafka = KafkaConfig(bootstrap_servers=f"127.0.0.1:{port}", port=port, controller_port=controller_port,
                            **kafka)  # type: ignore[arg-type]
    return cfg


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """The real broker (fetched from Maven Central on first use, cached), started once for the session."""
    state = tmp_path_factory.mktemp("kafka-state")
    broker = LocalKafka(make_config(state, free_port(), free_port()))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def kafka_config(kafka_broker: LocalKafka, tmp_path: Path) -> Config:
    """A Config pointing at the session broker, with unique topic names for this test (isolation without restarts)."""
    cfg = make_config(tmp_path / "state", kafka_broker.cfg.kafka.port, kafka_broker.cfg.kafka.controller_port)
    suffix = f"{os.getpid()}-{tmp_path.name}".replace("_", "-")
    t = cfg.kafka.topics
    t.events, t.alerts, t.rules = f"ev-{suffix}", f"al-{suffix}", f"ru-{suffix}"
    t.events_dlq, t.hunt = f"dlq-{suffix}", f"hu-{suffix}"
    cfg.worker.app_id = f"w-{suffix}"
    LocalKafka(cfg).create_topics()
    return cfg
