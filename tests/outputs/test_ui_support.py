"""Shared by the UI tests (no tests here): a real `run_ui` server in a thread, and alerts on the real topic."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer

from outputs.ui.server import run_ui, ui_access
from schemas.codec import encode_alert
from settings.config import Config
from settings.kafka_clients import producer_config

# Strings a hostile process can put into a path, command line or container name.
HOSTILE = ['<script>window.__xss=1</script>', '"><img src=x onerror="window.__xss=2">',
           "';window.__xss=3;//", '<svg onload="window.__xss=4">', "{{constructor.constructor('window.__xss=5')()}}"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningUi:
    url: str
    token: str
    db: Path
    stop: threading.Event
    thread: threading.Thread

    def client(self, auth: bool = True) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@contextmanager
def running_ui(cfg: Config, db: Path, consume: bool = False) -> Iterator[RunningUi]:
    port = free_port()
    access = ui_access(cfg, port, reset_token=True)  # a restart in the same state dir gets a fresh token
    token = access.token or ""
    stop = threading.Event()
    thread = threading.Thread(target=run_ui, args=(cfg, port, "127.0.0.1", db, stop),
                              kwargs={"consume": consume, "announce": False}, daemon=True)
    thread.start()
    ui = RunningUi(access.url, token, db, stop, thread)
    wait_for(lambda: _answers(ui.url), "the UI to listen")
    try:
        yield ui
    finally:
        stop.set()
        thread.join(timeout=20)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "login", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def produce(cfg: Config, records: list[dict[str, Any] | bytes]) -> None:
    producer = Producer(producer_config(cfg.kafka))
    for rec in records:
        value = rec if isinstance(rec, bytes) else encode_alert(rec)
        producer.produce(cfg.kafka.topics.alerts, value=value)
    assert producer.flush(30) == 0
