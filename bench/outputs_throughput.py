"""Output connector throughput against baselines measured in the same run, on the real local broker.

- file: the connector (decode, filter, dedup, enrich, file write + fsync per batch, commit) vs a bare
  confluent-kafka loop that consumes, decodes, writes and commits the same batches.
- webhook: the connector posting one alert per request to a local aiohttp server (own process) vs a bare aiohttp
  loop posting the same bodies to the same server, one at a time.

    .venv/bin/python bench/outputs_throughput.py --alerts 50000 --webhook-alerts 5000
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "outputs")]

import aiohttp  # noqa: E402
import httpx  # noqa: E402
from aiohttp import web  # noqa: E402
from confluent_kafka import Consumer  # noqa: E402
from conftest import free_port, make_config  # noqa: E402
from outputs_helpers import make_alert, produce  # noqa: E402

from deploy.local_kafka import LocalKafka  # noqa: E402
from outputs.config import parse_outputs  # noqa: E402
from outputs.falco_format import json_bytes  # noqa: E402
from outputs.supervisor import run_outputs  # noqa: E402
from schemas.codec import decode_alert  # noqa: E402
from settings.config import Config  # noqa: E402
from settings.kafka_clients import consumer_config  # noqa: E402


def fresh_topics(broker: LocalKafka, tag: str) -> Config:
    cfg = make_config(Path(tempfile.mkdtemp()), broker.cfg.kafka.port, broker.cfg.kafka.controller_port)
    t = cfg.kafka.topics
    t.events, t.alerts, t.rules, t.events_dlq, t.hunt = (f"{x}-{tag}" for x in ("ev", "al", "ru", "dlq", "hu"))
    cfg.worker.app_id = f"w-{tag}"
    LocalKafka(cfg).create_topics()
    return cfg


def baseline_file(cfg: Config, n: int, path: Path) -> float:
    consumer = Consumer(consumer_config(cfg.kafka, "bench-baseline"))
    consumer.subscribe([cfg.kafka.topics.alerts])
    started, seen = 0.0, 0
    with open(path, "ab") as fh:
        while seen < n:
            msgs = [m for m in consumer.consume(500, 0.5) if m.error() is None]
            if not msgs:
                continue
            started = started or time.perf_counter()
            fh.write(b"".join(json_bytes(decode_alert(m.value() or b"")) + b"\n" for m in msgs))
            fh.flush()
            os.fsync(fh.fileno())
            consumer.commit(asynchronous=False)
            seen += len(msgs)
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def connector(cfg: Config, spec: dict, progress: Callable[[], int], n: int) -> float:
    """Seconds from the first delivered alert to the n-th (start-up and group join excluded, as for the baseline)."""
    parsed = parse_outputs({"metrics": {"port": 0}, **spec}, "bench")
    stop = threading.Event()
    thread = threading.Thread(target=run_outputs, args=(cfg, parsed, stop), daemon=True)
    thread.start()
    while progress() == 0:
        time.sleep(0.005)
    started = time.perf_counter()
    while progress() < n:
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    stop.set()
    thread.join(60)
    return elapsed


def count_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _sink(port: int, counts: Any) -> None:
    """A webhook receiver in its own process (no GIL shared with the connector), counting requests per path."""
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        with counts.get_lock():
            counts[0 if request.path == "/b" else 1] += 1
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


class Sink:
    def __init__(self) -> None:
        self.port = free_port()
        self.counts = multiprocessing.Array("q", 2)
        self.proc = multiprocessing.Process(target=_sink, args=(self.port, self.counts), daemon=True)

    def __enter__(self) -> Sink:
        self.proc.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("webhook sink did not start")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.join(10)


def _delta(sink: Sink, before: int) -> int:
    return int(sink.counts[1]) - before


def baseline_webhook(url: str, bodies: list[bytes]) -> float:
    """Bare aiohttp: the same POSTs, one at a time, no Kafka, no framework."""
    async def go() -> float:
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=bodies[0]) as warm:
                await warm.read()
            started = time.perf_counter()
            for body in bodies:
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                    await resp.read()
                    resp.raise_for_status()
            return time.perf_counter() - started

    return asyncio.run(go())


def httpx_webhook(url: str, bodies: list[bytes]) -> float:
    """The same with httpx, to show why the HTTP outputs use aiohttp."""
    async def go() -> float:
        async with httpx.AsyncClient(trust_env=False) as client:
            (await client.post(url, content=bodies[0])).raise_for_status()
            started = time.perf_counter()
            for body in bodies:
                (await client.post(url, content=body, headers={"Content-Type": "application/json"})).raise_for_status()
            return time.perf_counter() - started

    return asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=50_000)
    ap.add_argument("--webhook-alerts", type=int, default=5_000)
    args = ap.parse_args()
    state = Path(tempfile.mkdtemp(prefix="outputs-bench-"))
    broker = LocalKafka(make_config(state, free_port(), free_port()))
    broker.start()
    try:
        cfg = fresh_topics(broker, "file")
        alerts = [make_alert(i) for i in range(args.alerts)]
        produce(cfg, alerts)
        base = baseline_file(cfg, args.alerts, state / "baseline.jsonl")
        out = state / "connector.jsonl"
        conn = connector(cfg, {"outputs": [{"name": "bench-file", "type": "file", "path": str(out),
                                            "batch_size": 500}]},
                         lambda: count_lines(out), args.alerts)
        print(f"file, {args.alerts} alerts: baseline {args.alerts / base:,.0f}/s, connector {args.alerts / conn:,.0f}/s,"
              f" ratio {base / conn:.2f}")

        cfg = fresh_topics(broker, "hook")
        hooks = alerts[: args.webhook_alerts]
        produce(cfg, hooks)
        with Sink() as sink:
            url = f"http://127.0.0.1:{sink.port}"
            bodies = [json_bytes(a) for a in hooks]
            base = baseline_webhook(url + "/b", bodies)
            slow = httpx_webhook(url + "/b", bodies)
            print(f"webhook, {len(hooks)} alerts: bare aiohttp loop {len(hooks) / base:,.0f}/s, bare httpx loop"
                  f" {len(hooks) / slow:,.0f}/s")
            for concurrency in (1, 10):
                name = f"bench-hook-{concurrency}"
                before = sink.counts[1]
                conn = connector(cfg, {"outputs": [{"name": name, "type": "webhook", "address": url + "/c",
                                                    "batch_size": 500, "maxconcurrentrequests": concurrency}]},
                                 partial(_delta, sink, before), len(hooks))
                print(f"webhook, maxconcurrentrequests={concurrency}: connector {len(hooks) / conn:,.0f}/s,"
                      f" ratio to the bare aiohttp loop {base / conn:.2f}")
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
