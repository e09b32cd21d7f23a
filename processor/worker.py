"""The Faust worker: consumes host-keyed event batches, keeps each host's thread table in Faust tables (changelogs
co-partitioned with the events topic), runs the rules engine, and produces Falco JSON alerts.

Delivery: an events record's offset is acknowledged only after its alerts (and table changelog writes) are
acknowledged by Kafka, so a crash replays the record; alert ids are deterministic, so replays are duplicates with the
same id. Agents run with concurrency 1: one partition's records are processed strictly in order.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

import faust
import orjson
from aiohttp import web
from prometheus_client import generate_latest

from processor import metrics
from processor.changelog import ChangelogProducer, Headers
from processor.dns_resolver import DnsResolver
from processor.offset_guard import GAP, REPLAY, OffsetGuard
from processor.pipeline import process_batch
from processor.rules_source import RulesHolder, local_rule_texts, watch_rules_topic
from processor.state import HostState, WriteBackStore
from schemas.codec import DecodeError, decode_batch, encode_alert, schema_fingerprint
from settings.config import Config
from settings.kafka_clients import faust_settings
from settings.runtime import tune_gc

log = logging.getLogger("peregrine.worker")


# A worker killed without leaving the group keeps its partitions until its session expires (Faust's default is
# 60 s of no alerts for those hosts). Heartbeats run in the consumer's own thread, so a busy batch cannot miss one.
FAILOVER = {"broker_session_timeout": 15.0, "broker_heartbeat_interval": 3.0}
# Event Hubs accepts 4 offset commits per second per partition; a commit follows every settle.
SETTLE_INTERVAL_S = 0.25
SETTLE_MAX_RECORDS = 64
STALL_READ_MAX = 64  # records the stall watchdog reads at a time from a partition Faust is not delivering
STALL_ROUNDS_MAX = 16  # ... and times per watchdog tick (up to 1,024 records every few seconds)


def build_app(cfg: Config, rules_files: list[str], decode_only: bool = False) -> faust.App:
    """The worker app. `decode_only` decodes each record and discards it: the throughput baseline."""
    k = cfg.kafka
    # Tables live in memory and in their changelogs; Faust still makes an (empty) data directory, by default in
    # the working directory. A private temporary one keeps checkouts and nodes clean.
    datadir = tempfile.mkdtemp(prefix=f"peregrine-{cfg.worker.app_id}-")
    atexit.register(shutil.rmtree, datadir, True)
    app = faust.App(
        cfg.worker.app_id,
        datadir=datadir,
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
        **{**FAILOVER, **faust_settings(k)},
    )
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    # acks=False: Faust never commits the events topic; the OffsetGuard does (see processor/offset_guard.py).
    events_topic = app.topic(k.topics.events, partitions=k.events_partitions, acks=False, **raw)
    # Keys "<host>|<id>" (raw utf-8), values JSON dicts: the app's default key/value serializers.
    table_opts = {"partitions": k.events_partitions, "key_type": str}
    procs = app.Table("proctable", default=None, **table_opts)  # type: ignore[arg-type]
    users = app.Table("users", default=None, **table_opts)  # type: ignore[arg-type]
    containers = app.Table("containers", default=None, **table_opts)  # type: ignore[arg-type]

    changelog = ChangelogProducer(k)
    stores = [WriteBackStore(t, changelog.sender(t)) for t in (procs, users, containers)]  # type: ignore[arg-type]
    state = HostState(procs=stores[0], users=stores[1], containers=stores[2],
                      max_procs_per_host=cfg.worker.proc_table_max_per_host,
                      purge_grace_ns=cfg.worker.proc_purge_grace_s * 10**9)
    holder = RulesHolder(cfg, local_rule_texts(rules_files))
    if not holder.load():
        raise SystemExit(f"peregrine worker: rules do not load:\n{holder.last_error}")
    metrics.RULES_LOADS.labels("ok").inc()
    metrics.RULES_LOADS.labels("failed")  # exported as 0 from the start: alerting on increase() needs the series
    metrics.RELOAD_TS.set(holder.reload_ts_ns)

    def on_rules_loaded(_engine: Any) -> None:
        metrics.RULES_LOADS.labels("ok").inc()
        metrics.RELOAD_TS.set(holder.reload_ts_ns)

    holder.on_change.append(on_rules_loaded)
    dns = DnsResolver(lambda: holder.engine.dns_names(), state.dns, cfg.worker.dns_refresh_s)
    holder.on_change.append(lambda _engine: dns.poke())  # a new rule's names resolve now, not at the next refresh

    def export_dns(resolver: DnsResolver) -> None:
        metrics.DNS_NAMES.labels("resolved").set(len(resolver.last))
        metrics.DNS_NAMES.labels("unresolved").set(len(resolver.unresolved))

    dns.on_resolved.append(export_dns)
    holder.on_refused.append(lambda _report: metrics.RULES_LOADS.labels("failed").inc())
    for reason in ("decode", "engine"):
        metrics.DLQ.labels(reason)
    stop = threading.Event()
    processed: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset to process, for lag
    guard = _offset_guard(app, cfg)

    # Records are processed back to back; their sends are acknowledged in groups (`settle`): a record's offset
    # becomes committable only after the flush that follows it, so the worker never idles waiting for acks. The
    # commit follows each settle at once: the table changelog is written at settle time, so a crash replays the
    # records whose state changes were not yet written (short of a crash in the moments between a settle's flush and
    # its commit, when a replayed record meets state that already includes it).
    unsettled: list[tuple[Any, int, int]] = []  # (tp, offset, guard epoch) processed since the last settle
    settling = asyncio.Lock()
    last_settle = [time.monotonic()]
    last_commit = [time.monotonic()]

    async def settle() -> None:
        async with settling:
            records = unsettled[:]
            unsettled.clear()
            last_settle[0] = time.monotonic()
            try:
                for store in stores:
                    store.flush()  # one changelog record per key changed since the last settle
                await changelog.flush()  # alerts, dead letters and table writes acknowledged by Kafka
            except Exception as exc:
                # A lost send: commit nothing more and stop; the restarted worker replays from the last commit.
                log.critical("sending alerts or state failed, stopping without committing: %s", exc)
                guard.freeze()
                await app.crash(exc)
                raise
            for tp, offset, epoch in records:
                guard.done(tp, offset, epoch)

    async def dead_letter(msg: Any, reason: str, error: str, value: bytes) -> None:
        headers: Headers = [("peregrine.source", f"{msg.topic}:{msg.partition}:{msg.offset}".encode()),
                   ("peregrine.reason", reason.encode()), ("peregrine.error", error.encode()[:4000])]
        changelog.send(k.topics.events_dlq, msg.key, value, headers)
        metrics.DLQ.labels(reason).inc()

    async def handle(msg: Any) -> None:
        started = time.perf_counter()
        metrics.RECORDS.labels(msg.topic, str(msg.partition)).inc()
        try:
            batch = decode_batch(msg.value, schema_fingerprint(msg.headers))
        except DecodeError as exc:
            log.warning("%s:%s:%s: undecodable record sent to %s: %s", msg.topic, msg.partition, msg.offset,
                        k.topics.events_dlq, exc)
            await dead_letter(msg, "decode", str(exc), msg.value or b"")
            return
        if decode_only:
            metrics.EVENTS.inc(len(batch["events"]))
            return
        for store in stores:
            store.partition = msg.partition  # the changelog partition of what this record changes
        result = process_batch(batch, state, holder.engine)
        for a in result.alerts:
            changelog.send(k.topics.alerts, a["hostname"].encode(), encode_alert(a))
        for failure in result.failures:
            log.warning("%s:%s:%s: event seq %s made the engine raise: %s", msg.topic, msg.partition, msg.offset,
                        failure.seq, failure.error)
            await dead_letter(msg, "engine", f"seq {failure.seq}: {failure.error}", orjson.dumps(failure.event))
        metrics.ALERTS.inc(len(result.alerts))
        metrics.EVENTS.inc(result.events)
        for (rule, priority, source), n in result.matches.items():
            metrics.RULE_MATCHES.labels(rule, priority, source).inc(n)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    async def process(tp: Any, record: Any, epoch: int) -> None:
        """One record through state and rules; committable once its sends settle."""
        await handle(record)
        guard.processed(tp, record.offset, epoch)
        unsettled.append((tp, record.offset, epoch))

    rules_waited: list[bool] = []  # the first event waits for the rules topic, once
    # Faust can stop delivering a partition after a rebalance while its records wait (faust-streaming #629: no fetch
    # request is ever sent for it again; seen here once in CI after a worker was killed). The stall watchdog then
    # reads that partition itself, through the guard's side client, as the gap path does. One record at a time,
    # whichever path delivers it, so the guard's next offset is never admitted twice.
    one_record = asyncio.Lock()
    delivered: dict[Any, float] = {}  # events partition -> when Faust last delivered it (or it was first seen)
    stalled: set[Any] = set()  # partitions the watchdog reads until Faust delivers them again
    stall_s = cfg.worker.stall_timeout_s
    # Fault injection for tests: pause Faust's fetching of every events partition it is given, as #629 does.
    pause_fetch = cfg.worker.fault_pause_events_fetch

    @app.agent(events_topic, concurrency=1)
    async def process_events(stream: faust.StreamT) -> Any:
        async for event in stream.events():
            if not rules_waited:
                # The rules in force are the published ones: the rules topic is read to its end before the first
                # event. (Waiting here, not before iterating: Faust's start-up waits for the agent's stream.)
                rules_waited.append(True)
                if not await asyncio.get_running_loop().run_in_executor(None, holder.caught_up.wait, 60.0):
                    log.error("rules topic %s not read to its end after 60s: evaluating with the rules loaded so far",
                              k.topics.rules)
            msg = event.message
            delivered[msg.tp] = time.monotonic()  # Faust delivers this partition: not stalled
            stalled.discard(msg.tp)
            async with one_record:
                epoch = guard.epoch  # a revocation during any await below hands this partition to its next owner
                verdict = await guard.admit(msg.tp, msg.offset)
                if verdict == REPLAY or guard.epoch != epoch:
                    continue
                if verdict == GAP:
                    for skipped in await guard.missing(msg.tp, msg.offset):
                        if guard.epoch != epoch:
                            break  # revoked while we fetched: the table no longer holds this partition's hosts
                        await process(msg.tp, skipped, epoch)
                    if guard.epoch != epoch:
                        continue
                await process(msg.tp, msg, epoch)
                if len(unsettled) >= SETTLE_MAX_RECORDS or time.monotonic() - last_settle[0] >= SETTLE_INTERVAL_S:
                    await settle()
                    if time.monotonic() - last_commit[0] >= SETTLE_INTERVAL_S:
                        last_commit[0] = time.monotonic()
                        await guard.flush()  # commit now: a successor's replay starts where the changelog stops
                processed[(msg.topic, msg.partition)] = msg.offset + 1

    @app.timer(interval=1.0)  # Event Hubs allows 4 commits/s per partition
    async def commit_processed() -> None:
        await settle()  # the stream may be idle: what it processed last still settles and commits
        await guard.flush()

    @app.timer(interval=max(0.5, min(5.0, stall_s / 4)))
    async def stall_watchdog() -> None:
        now = time.monotonic()
        for tp in list(app.consumer.assignment()):
            if tp.topic != events_topic.get_topic_name():
                continue
            if pause_fetch:
                app.consumer.pause_partitions([tp])  # again each round: Faust resumes partitions after recovery
            if tp not in delivered:
                delivered[tp] = now
                continue
            if tp not in stalled and now - delivered[tp] < stall_s:
                continue
            for _ in range(STALL_ROUNDS_MAX):
                if not await read_stalled(tp):
                    break

    async def read_stalled(tp: Any) -> bool:
        """Process what waits in a partition Faust is not delivering, STALL_READ_MAX records at a time (the lock is
        released in between, for the partitions Faust does deliver); True when more may wait."""
        assert guard.highwater is not None
        epoch = guard.epoch
        high = await guard.highwater(tp)
        async with one_record:
            start = guard.next_offset.get(tp)
            if start is None:
                start = await guard.committed(tp)
            if guard.epoch != epoch or tp not in app.consumer.assignment() or tp not in delivered:
                return False
            if high <= start:
                delivered[tp] = time.monotonic()  # idle, not stalled: nothing waits
                stalled.discard(tp)
                return False
            if tp not in stalled:
                stalled.add(tp)
                metrics.STALLS.labels(str(tp.partition)).inc()
                log.warning("%s:%s: Faust delivered nothing for %.0fs while offsets %d..%d waited (faust-streaming "
                            "#629): reading them directly until it delivers again", tp.topic, tp.partition,
                            time.monotonic() - delivered[tp], start, high - 1)
            for record in await guard.fetch(tp, start, min(high, start + STALL_READ_MAX)):
                verdict = await guard.admit(tp, record.offset)
                if guard.epoch != epoch:
                    break
                if verdict == REPLAY:
                    continue
                # ACCEPT, or GAP when retention removed what lay below: the fetch starts at the low watermark
                await process(tp, record, epoch)
                processed[(tp.topic, tp.partition)] = record.offset + 1
                metrics.STALL_RECORDS.inc()
        await settle()
        await guard.flush()
        return guard.epoch == epoch and tp in stalled

    watch_rules_topic(holder, stop)  # a thread of its own, from now: the rules are read before records flow
    dns.start(stop)

    @app.task
    async def start_side_services() -> None:
        if cfg.worker.metrics_port:
            await _serve_http(cfg.worker.metrics_port, holder, state)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(_sender: Any, *_args: Any, **_kw: Any) -> None:
        await settle()
        await guard.flush()  # still a member of this generation: our progress on the revoked partitions commits
        guard.forget()
        for store in stores:
            store.forget()
        state.forget_counts()  # the next write recounts what the recovered tables hold
        processed.clear()
        delivered.clear()
        stalled.clear()
        metrics.CONSUMER_LAG.clear()

    @app.timer(interval=2.0)
    async def refresh_gauges() -> None:
        metrics.N_THREADS.set(sum(state.proc_counts.values()))
        metrics.HOSTS.set(sum(1 for n in state.proc_counts.values() if n))
        metrics.N_DROPS_FULL_THREADTABLE.set(state.evicted)
        metrics.PURGED.set(state.purged)
        metrics.OFFSET_GAPS.set(guard.gaps)
        metrics.REPLAYS_SKIPPED.set(guard.replays)
        for name, table in (("proctable", procs), ("users", users), ("containers", containers)):
            metrics.STATE_ENTRIES.labels(name).set(len(table))
        try:
            for tp in app.consumer.assignment():
                if tp.topic != events_topic.get_topic_name():
                    continue
                hw = app.consumer.highwater(tp)
                done = processed.get((tp.topic, tp.partition))
                if done is None:
                    done = await app.consumer.position(tp)
                if hw is not None and done is not None:
                    metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, hw - done))
        except Exception:  # lag is best-effort during rebalances
            log.debug("consumer lag unavailable", exc_info=True)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def on_shutdown(app: faust.App, **_: Any) -> None:
        stop.set()
        await settle()
        await guard.flush()
        changelog.close()

    app.peregrine_holder = holder  # type: ignore[attr-defined]
    app.peregrine_state = state  # type: ignore[attr-defined]
    return app


@dataclass
class FetchedRecord:
    """A record the guard read itself (a gap Faust skipped): what `handle` needs of a Faust message."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None = None


def _offset_guard(app: faust.App, cfg: Config) -> OffsetGuard:
    """The guard's view of the group: committed offsets and skipped records through a side client (neither needs
    membership), commits through Faust's own consumer (a commit must carry the member's generation)."""
    from confluent_kafka import Consumer, TopicPartition

    from settings.kafka_clients import consumer_config

    side: list[Any] = []
    lock = threading.Lock()

    def client() -> Any:
        if not side:
            side.append(Consumer(consumer_config(cfg.kafka, group_id=cfg.worker.app_id)))
        return side[0]

    def committed_sync(topic: str, partition: int) -> int:
        with lock:
            tp = TopicPartition(topic, partition)
            (got,) = client().committed([tp], timeout=15)
            low, _high = client().get_watermark_offsets(tp, timeout=15)
        return max(got.offset, low) if got.offset >= 0 else low  # no commit (or expired): the reset is earliest

    def fetch_sync(topic: str, partition: int, start: int, end: int) -> list[FetchedRecord]:
        out: list[FetchedRecord] = []
        with lock:
            c = client()
            low, _high = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=15)
            c.assign([TopicPartition(topic, partition, max(start, low))])
            try:
                deadline = time.monotonic() + 60
                while (not out or out[-1].offset < end - 1) and max(start, low) < end:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{topic}:{partition}: could not re-read offsets {start}..{end - 1}")
                    for m in c.consume(500, 1.0):
                        if m.error() is None and (m.offset() or 0) < end:
                            out.append(FetchedRecord(topic, partition, m.offset() or 0, m.key(), m.value(), m.headers()))
            finally:
                c.unassign()
        return out

    def highwater_sync(topic: str, partition: int) -> int:
        with lock:
            _low, high = client().get_watermark_offsets(TopicPartition(topic, partition), timeout=15)
        return int(high)

    async def committed(tp: Any) -> int:
        return await asyncio.get_running_loop().run_in_executor(None, committed_sync, tp.topic, tp.partition)

    async def highwater(tp: Any) -> int:
        return await asyncio.get_running_loop().run_in_executor(None, highwater_sync, tp.topic, tp.partition)

    async def fetch(tp: Any, start: int, end: int) -> list[FetchedRecord]:
        return await asyncio.get_running_loop().run_in_executor(None, fetch_sync, tp.topic, tp.partition, start, end)

    async def commit(offsets: dict[Any, int]) -> bool:
        """Commit in the consumer's own thread, checking the assignment there (no await in between).

        Not Faust's `_commit`: when every partition was revoked meanwhile it hands aiokafka an empty mapping,
        aiokafka raises ValueError({}) and Faust turns that into a worker crash (seen in the fleet test)."""
        from aiokafka.errors import CommitFailedError, IllegalStateError
        from aiokafka.structs import OffsetAndMetadata
        from aiokafka.structs import TopicPartition as AioTP

        thread = app.consumer._thread  # type: ignore[attr-defined]

        async def in_consumer_thread() -> bool:
            consumer = thread._ensure_consumer()
            owned = consumer.assignment()
            mine = {AioTP(tp.topic, tp.partition): OffsetAndMetadata(offset, "") for tp, offset in offsets.items()
                    if AioTP(tp.topic, tp.partition) in owned}
            if not mine:
                return True  # revoked meanwhile: the new owner replays from the last commit
            try:
                await consumer.commit(mine)
            except (CommitFailedError, IllegalStateError) as exc:
                log.warning("commit of %s refused: %s", mine, exc)
                return False
            return True

        return bool(await thread.call_thread(in_consumer_thread))

    return OffsetGuard(committed, fetch, commit, highwater)


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


def run_worker(cfg: Config, rules_files: list[str], loglevel: str = "WARNING", decode_only: bool = False) -> int:
    app = build_app(cfg, rules_files, decode_only)
    tune_gc()
    # aiokafka and faust log per message at DEBUG; with the root logger open that builds a record per send
    # (7 % of a worker's CPU in the benchmark profile) that the handler then drops.
    for name in ("aiokafka", "faust", "mode"):
        logging.getLogger(name).setLevel(loglevel.upper())
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
    return 0
