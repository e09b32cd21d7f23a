"""An Event Hubs-like broker for the deploy tests: its own LocalKafka with a SASL_SSL listener, started once per module."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.eventhubs_like import (
    TestCA,
    connection_string,
    eventhubs_client_config,
    eventhubs_like_broker,
    make_test_ca,
)
from deploy.local_kafka import LocalKafka
from settings.config import KafkaConfig
from tests.conftest import free_port, make_config


@dataclass
class EventHubsLike:
    broker: LocalKafka
    sasl_port: int
    ca: TestCA
    password: str

    def client_config(self, password: str | None = None) -> KafkaConfig:
        return eventhubs_client_config(self.broker, self.sasl_port, self.ca,
                                       self.password if password is None else password)

    def log_dir(self, topic: str, partition: int) -> Path:
        return self.broker.home / "data" / f"{topic}-{partition}"


@pytest.fixture(scope="module")
def eventhubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventHubsLike]:
    root = tmp_path_factory.mktemp("eventhubs-like")
    ca = make_test_ca(root / "tls")
    cfg = make_config(root / "state", free_port(), free_port())
    cfg.worker.app_id = f"eh-{os.getpid()}"
    sasl_port = free_port()
    password = connection_string()
    broker = eventhubs_like_broker(cfg, sasl_port, ca, password)
    broker.start()  # pre-creates every topic of the topology; auto-creation is off
    try:
        yield EventHubsLike(broker, sasl_port, ca, password)
    finally:
        broker.stop()


@dataclass(frozen=True)
class StoredBatch:
    """One record batch as the broker wrote it to its log: what the client sent, byte for byte."""

    offset: int
    size: int
    compression: int  # 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd


def stored_batches(log_dir: Path) -> list[StoredBatch]:
    """Walk the partition's segment files (record batch format v2: offset, length, epoch, magic, crc, attributes)."""
    batches = []
    for segment in sorted(log_dir.glob("*.log")):
        data = segment.read_bytes()
        pos = 0
        while pos + 23 <= len(data):
            base_offset, length = struct.unpack_from(">qi", data, pos)
            attributes = struct.unpack_from(">h", data, pos + 21)[0]
            batches.append(StoredBatch(base_offset, 12 + length, attributes & 0x7))
            pos += 12 + length
    return batches
