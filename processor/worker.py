"""The Faust worker: consumes host-keyed event batches, keeps each host's thread table in Faust tables (changelogs
co-partitioned with the events topic), runs the rules engine, and produces Falco JSON alerts.

Delivery: an events record's offset is acknowledged only after its alerts (and table changelog writes) are
acknowledged by Kafka, so a crash replays the record; alert ids are deterministic, so replays are duplicates with the
same id. Agents run with concurrency 1: one partition's records are processed strictly in order.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import faust
import orjson
from aiohttp import web
from prometheus_client import generate_latest

from processor import metrics
from processor.pipeline import process_batch
from processor.rules_source import RulesHolder, local_rule_texts, watch_rules_topic
from processor.state import HostState
from schemas.codec import DecodeError, decode_batch, encode_alert
from settings.config import Config
from settings.kafka_clients import faust_settings

log = logging.getLogger("peregrine.worker")


def build_app(cfg: Config, rules_files: list[str]) -> faust.App:
    k = cfg.kafka
    app = faust.App(
        cfg.worker.app_id,
        store="memory://",
        topic_partitions=k.events_partitions,
        topic_replication_factor=k.replication_factor,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        table_standby_replicas=0,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=256,
        producer_linger=0.005,
        **faust_settings(k),
    )
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    events_topic = app.topic(k.topics.events, partitions=k.events_partitions, **raw)  # type: ignore[arg-type]
    alerts_topic = app.topic(k.topics.alerts, **raw)  # type: ignore[arg-type]
    dlq_topic = app.topic(k.topics.events_dlq, **raw)  # type: ignore[arg-type]
    # Keys "<host>|<id>" (raw utf-8), values JSON dicts: the app's default key/value serializers.
    table_opts = {"partitions": k.events_partitions, "key_type": str}
    procs = app.Table("proctable", default=None, **table_opts)  # type: ignore[arg-type]
    users = app.Table("users", default=None, **table_opts)  # type: ignore[arg-type]
    containers = app.Table("containers", default=None, **table_opts)  # type: ignore[arg-type]

    state = HostState(procs=procs, users=users, containers=containers,  # type: ignore[arg-type]
                      max_procs_per_host=cfg.worker.proc_table_max_per_host,
                      purge_grace_ns=cfg.worker.proc_purge_grace_s * 10**9)
    holder = RulesHolder(cfg, local_rule_texts(rules_files))
    if not holder.load():
        raise SystemExit(f"peregrine worker: rules do not load:\n{holder.last_error}")
    metrics.RULES_LOADS.labels("ok").inc()
    metrics.RELOAD_TS.set(holder.reload_ts_ns)
    stop = threading.Event()

    async def dead_letter(msg: Any, reason: str, error: str, value: bytes) -> None:
        headers = [("peregrine.source", f"{msg.topic}:{msg.partition}:{msg.offset}".encode()),
                   ("peregrine.reason", reason.encode()), ("peregrine.error", error.encode()[:4000])]
        fut = await dlq_topic.send(key=msg.key, value=value, headers=headers)
        await fut
        metrics.DLQ.labels(reason).inc()

    @app.agent(events_topic, concurrency=1)
    async def process_events(stream: faust.StreamT) -> Any:
        async for event in stream.events():
            msg = event.message
            started = time.perf_counter()
            metrics.RECORDS.labels(msg.topic, str(msg.partition)).inc()
            try:
                batch = decode_batch(msg.value)
            except DecodeError as exc:
                log.warning("%s:%s:%s: undecodable record sent to %s: %s", msg.topic, msg.partition, msg.offset,
                            k.topics.events_dlq, exc)
                await dead_letter(msg, "decode", str(exc), msg.value or b"")
                continue
            result = process_batch(batch, state, holder.engine)
            futures = [await alerts_topic.send(key=a["hostname"].encode(), value=encode_alert(a))
                       for a in result.alerts]
            for failure in result.failures:
                log.warning("%s:%s:%s: event seq %s made the engine raise: %s", msg.topic, msg.partition, msg.offset,
                            failure.seq, failure.error)
                await dead_letter(msg, "engine", f"seq {failure.seq}: {failure.error}", orjson.dumps(failure.event))
            if futures:
                await asyncio.gather(*futures)
            if result.state_changes or futures:
                await app.producer.flush()  # changelog writes durable before this offset can commit
            metrics.ALERTS.inc(len(futures))
            metrics.EVENTS.inc(result.events)
            for (rule, priority, source), n in result.matches.items():
                metrics.RULE_MATCHES.labels(rule, priority, source).inc(n)
            metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    @app.task
    async def start_side_services() -> None:
        def on_change(_engine: Any) -> None:
            metrics.RELOAD_TS.set(holder.reload_ts_ns)
        holder.on_change.append(on_change)
        watch_rules_topic(holder, stop)
        if cfg.worker.metrics_port:
            await _serve_http(cfg.worker.metrics_port, holder, state)

    @app.timer(interval=5.0)
    async def refresh_gauges() -> None:
        metrics.N_THREADS.set(sum(state.proc_counts.values()))
        metrics.N_DROPS_FULL_THREADTABLE.set(state.evicted)
        failed = holder.loads_failed
        if failed:
            metrics.RULES_LOADS.labels("failed")._value.set(failed)  # noqa: SLF001 - mirror holder's counter
        try:
            for tp in app.consumer.assignment():
                hw = app.consumer.highwater(tp)
                pos = await app.consumer.position(tp)
                if hw is not None and pos is not None:
                    metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, hw - pos))
        except Exception:  # lag is best-effort during rebalances
            pass

    @app.on_before_shutdown.connect
    async def on_shutdown(app: faust.App, **_: Any) -> None:
        stop.set()

    app.peregrine_holder = holder  # type: ignore[attr-defined]
    app.peregrine_state = state  # type: ignore[attr-defined]
    return app


async def _serve_http(port: int, holder: RulesHolder, state: HostState) -> None:
    async def metrics_page(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.REGISTRY), content_type="text/plain", charset="utf-8")

    async def healthz(_: web.Request) -> web.Response:
        ok = holder.engine is not None
        return web.json_response({"status": "ok" if ok else "no rules"}, status=200 if ok else 503)

    web_app = web.Application()
    web_app.router.add_get("/metrics", metrics_page)
    web_app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()


def run_worker(cfg: Config, rules_files: list[str], loglevel: str = "WARNING") -> int:
    app = build_app(cfg, rules_files)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
    return 0
