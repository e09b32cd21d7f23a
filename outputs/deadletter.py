"""Per-output dead-letter topic: an alert the destination never took, with why, where from and how often tried."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import KafkaError, Producer

from outputs.model import Alert, SourceOffset


class DeadLetterError(RuntimeError):
    """The dead-letter write itself failed: offsets stay uncommitted so nothing is lost."""


@dataclass
class DeadLetter:
    reason: str            # short kind: gave_up, rejected, undecodable
    error: str             # the destination's last answer
    source: list[SourceOffset]
    alert: Alert | None = None
    raw: bytes | None = None
    attempts: int = 0
    failing_since: float | None = None

    def envelope(self, output: str, output_type: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "output": output, "type": output_type, "reason": self.reason, "error": self.error,
            "attempts": self.attempts, "dead_lettered_at": time.time(), "failing_since": self.failing_since,
            "source": [{"topic": s.topic, "partition": s.partition, "offset": s.offset} for s in self.source],
        }
        if self.alert is not None:
            body["alert"] = self.alert
        if self.raw is not None:
            body["raw_base64"] = base64.b64encode(self.raw).decode()
        return body


class DeadLetterQueue:
    def __init__(self, producer_conf: dict[str, Any], topic: str, output: str, output_type: str) -> None:
        self.topic, self.output, self.output_type = topic, output, output_type
        self._producer = Producer(producer_conf)

    def write(self, letters: list[DeadLetter], timeout: float = 30.0) -> None:
        errors: list[str] = []

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        for letter in letters:
            key = (letter.alert or {}).get("uuid")
            self._producer.produce(
                self.topic, orjson.dumps(letter.envelope(self.output, self.output_type)),
                key=str(key).encode() if key else None, on_delivery=on_delivery,
                headers=[("peregrine.reason", letter.reason.encode()), ("peregrine.output", self.output.encode())])
            self._producer.poll(0)
        left = self._producer.flush(timeout)
        if errors or left:
            raise DeadLetterError(f"dead-letter topic {self.topic}: {left} undelivered, errors: {errors[:3]}")

    def close(self) -> None:
        self._producer.flush(10)
        del self._producer
