"""Output connector throughput against baselines measured in the same run, on the real local broker.

- file: the connector (decode, filter, dedup, enrich, file write + fsync per batch, commit) vs a bare
  confluent-kafka loop that consumes, decodes, writes and commits the same batches.
- webhook: the connector posting one alert per request to a local aiohttp server vs a bare httpx loop posting
  the same bodies to the same server.

    .venv/bin/python bench/outputs_throughput.py --alerts 50000 --webhook-alerts 5000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "outputs")]

import httpx  # noqa: E402
from confluent_kafka import Consumer  # noqa: E402
from conftest import free_port, make_config  # noqa: E402
from outputs_helpers import make_alert, produce  # noqa: E402
from servers import HttpServer  # noqa: E402

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


def baseline_webhook(url: str, bodies: list[bytes]) -> float:
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
        with HttpServer() as server:
            base = baseline_webhook(server.url + "/b", [json_bytes(a) for a in hooks])
            conn = connector(cfg, {"outputs": [{"name": "bench-hook", "type": "webhook", "address": server.url + "/c",
                                                "batch_size": 500}]},
                             lambda: sum(r.path == "/c" for r in server.requests), len(hooks))
        print(f"webhook, {len(hooks)} alerts: baseline {len(hooks) / base:,.0f}/s, connector {len(hooks) / conn:,.0f}/s,"
              f" ratio {base / conn:.2f}")
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
