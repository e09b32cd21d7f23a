"""Processor throughput: wire records (Avro EventBatch) through state + Falco's rules, against decode-and-discard.

The mix is what a busy Kubernetes node sends: per host a /proc snapshot of a realistic process tree, then
opens / execs / connects ~80/15/5 by those processes (every exec also has its clone and, later, its exit), each
record a batch of one host's events. Rules: Falco's stable + incubating + sandbox files from ../shared/falco-rules.

Three measurements, each against a baseline taken in the same run on the same records:

  * in-process:   `process_batch` (fresh HostState over dicts) + alert encoding, vs `decode_batch` and discard
                  (the worker's decoder: schemas/batch_reader.c where built, else fastavro; fastavro alone is
                  printed too); events per CPU-second of this process (time.process_time) and wall-clock;
  * two processes: the same work split by host over two OS processes (wall-clock, vs one process);
  * end to end (`--e2e`): real `peregrine worker` processes (Faust) against a dedicated local Kafka broker,
                  one worker then two, vs one worker started with `--decode-only` (decode and discard); events/s
                  from the workers' /metrics counters while they drain a pre-filled events topic.

Usage:
    .venv/bin/python bench/processor_bench.py [--records N] [--batch N] [--hosts N] [--profile] [--e2e]
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import os
import platform
import pstats
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FALCO_RULES = REPO / "../shared/falco-rules"
RULE_FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")
TARGET_PER_WORKER = 100_000
T0 = 1_764_000_000_000_000_000

Event = dict[str, Any]

# (comm, exepath, argv, uid, parent index or None, container)
TREE: list[tuple[str, str, list[str], int, int | None, str]] = [
    ("systemd", "/usr/lib/systemd/systemd", ["/sbin/init"], 0, None, ""),                              # 0
    ("containerd", "/usr/bin/containerd", ["/usr/bin/containerd"], 0, 0, ""),                            # 1
    ("kubelet", "/usr/bin/kubelet", ["/usr/bin/kubelet", "--config=/var/lib/kubelet/config.yaml"], 0, 0, ""),
    ("sshd", "/usr/sbin/sshd", ["sshd", "-D"], 0, 0, ""),                                                # 3
    ("bash", "/usr/bin/bash", ["-bash"], 1000, 3, ""),                                                   # 4
    ("containerd-shim", "/usr/bin/containerd-shim-runc-v2", ["containerd-shim-runc-v2", "-namespace", "k8s.io"],
     0, 1, ""),                                                                                          # 5
    ("nginx", "/usr/sbin/nginx", ["nginx", "-g", "daemon off;"], 33, 5, "3f9a1c2b7d4e"),                 # 6
    ("gunicorn", "/usr/local/bin/python3.12", ["gunicorn", "app:wsgi"], 1000, 5, "8b2e6f0a9c1d"),         # 7
    ("python3", "/usr/local/bin/python3.12", ["python3", "-m", "gunicorn", "app:wsgi"], 1000, 7, "8b2e6f0a9c1d"),
    ("postgres", "/usr/lib/postgresql/16/bin/postgres", ["postgres", "-D", "/var/lib/postgresql/data"], 999, 5,
     "c4d5e6f7a8b9"),                                                                                    # 9
    ("java", "/usr/lib/jvm/java-17/bin/java", ["java", "-Xmx2g", "-jar", "/app/service.jar"], 1000, 5,
     "1a2b3c4d5e6f"),                                                                                    # 10
    ("redis-server", "/usr/local/bin/redis-server", ["redis-server", "*:6379"], 999, 5, "9e8d7c6b5a4f"),  # 11
    ("node", "/usr/local/bin/node", ["node", "server.js"], 1000, 5, "7a6b5c4d3e2f"),                      # 12
    ("systemd-journal", "/usr/lib/systemd/systemd-journald", ["/usr/lib/systemd/systemd-journald"], 0, 0, ""),
    ("cron", "/usr/sbin/cron", ["/usr/sbin/cron", "-f"], 0, 0, ""),                                      # 14
]
BUSY = [6, 7, 8, 9, 10, 11, 12, 2, 1, 13]  # who does the opens/connects
CONTAINERS = {
    "3f9a1c2b7d4e": ("docker.io/library/nginx", "shop"), "8b2e6f0a9c1d": ("docker.io/library/python", "shop"),
    "c4d5e6f7a8b9": ("docker.io/library/postgres", "db"), "1a2b3c4d5e6f": ("docker.io/library/eclipse-temurin", "pay"),
    "9e8d7c6b5a4f": ("docker.io/bitnami/redis", "cache"), "7a6b5c4d3e2f": ("docker.io/library/node", "web"),
}
READ_FILES = [
    "/usr/lib/x86_64-linux-gnu/libc.so.6", "/etc/ld.so.cache", "/proc/self/stat", "/proc/meminfo",
    "/sys/fs/cgroup/cpu.max", "/etc/localtime", "/etc/nsswitch.conf", "/etc/hosts", "/etc/resolv.conf",
    "/app/static/css/site.css", "/app/templates/index.html", "/usr/share/zoneinfo/UTC",
    "/var/lib/postgresql/data/base/16384/2619", "/usr/local/lib/python3.12/json/__init__.py",
    "/proc/1234/cmdline", "/sys/class/net/eth0/statistics/rx_bytes", "/etc/ssl/certs/ca-certificates.crt",
    "/var/lib/kubelet/pods/7c1e/volumes/kubernetes.io~projected/token",
]
O_RDONLY_CLOEXEC = str(0o2000000)
WRITE_FILES = [
    ("/var/log/nginx/access.log", str(0o1 | 0o2000 | 0o100)),
    ("/tmp/tmpa81x2k", str(0o2 | 0o100 | 0o200)),
    ("/var/lib/postgresql/data/pg_wal/000000010000000000000001", str(0o2)),
    ("/app/cache/session-9f2.json", str(0o1 | 0o100 | 0o1000)),
    ("/var/log/journal/3b1f/system.journal", str(0o2 | 0o100)),
]
EXECS = [  # (parent index, comm, exepath, argv)
    (2, "sh", "/usr/bin/dash", ["sh", "-c", "/usr/local/bin/healthcheck.sh"]),
    (2, "curl", "/usr/bin/curl", ["curl", "-fsS", "http://localhost:8080/healthz"]),
    (4, "git", "/usr/bin/git", ["git", "fetch", "--all"]),
    (4, "ls", "/usr/bin/ls", ["ls", "-la", "/srv"]),
    (4, "ps", "/usr/bin/ps", ["ps", "aux"]),
    (14, "python3", "/usr/bin/python3.12", ["python3", "/opt/jobs/report.py"]),
    (5, "runc", "/usr/bin/runc", ["runc", "--root", "/run/containerd/runc/k8s.io", "init"]),
    (5, "pg_isready", "/usr/lib/postgresql/16/bin/pg_isready", ["pg_isready", "-U", "postgres"]),
    (14, "date", "/usr/bin/date", ["date", "+%s"]),
    (12, "node", "/usr/local/bin/node", ["node", "worker.js"]),
]
CONNECTS = [("10.96.0.10", "53", "udp"), ("10.244.1.17", "5432", "tcp"), ("10.244.2.9", "6379", "tcp"),
            ("140.82.112.4", "443", "tcp"), ("52.95.110.1", "443", "tcp")]


def _ev(ts: int, etype: str, pid: int, ppid: int, uid: int, comm: str, res: int = 0,
        args: dict[str, str] | None = None, proc: dict[str, Any] | None = None) -> Event:
    return {"ts": ts, "type": etype, "tid": pid, "pid": pid, "ppid": ppid, "uid": uid, "gid": uid, "euid": uid,
            "loginuid": 1000 if uid == 1000 else -1, "comm": comm, "res": res, "args": args or {}, "proc": proc}


def _proc(exepath: str, argv: list[str], cid: str, sid: int, start_ts: int, tty: int = 0) -> dict[str, Any]:
    return {"exe": argv[0], "exepath": exepath, "args": argv, "args_truncated": False, "cwd": "/", "tty": tty,
            "sid": sid, "pgid": sid, "vpid": 0, "start_ts": start_ts, "env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"],
            "container_id": cid, "cap_permitted": 0x1ffffffffff if not cid else 0x400,
            "cap_effective": 0x1ffffffffff if not cid else 0x400, "cap_inheritable": 0,
            "exe_from_memfd": False, "exe_upper_layer": False, "exe_ino_ctime": T0 - 10**15,
            "exe_ino_mtime": T0 - 10**15}


class HostStream:
    """One host's event stream: snapshot first, then the mix; pids and timestamps advance like a real node."""

    def __init__(self, host: str, seed: int) -> None:
        self.host = host
        self.rng = random.Random(seed)
        self.ts = T0
        self.seq = 1
        self.batch_seq = 0
        self.next_pid = 30_000
        self.pids: list[int] = []
        self.pending_exits: list[tuple[int, int, str]] = []
        self.snapshot: list[Event] = []
        for i, (comm, exe, argv, uid, parent, cid) in enumerate(TREE):
            pid = 1 if i == 0 else 100 + i * 10
            self.pids.append(pid)
            ppid = 0 if parent is None else self.pids[parent]
            self.snapshot.append(_ev(self.ts, "snapshot", pid, ppid, uid, comm[:15],
                                     proc=_proc(exe, argv, cid, pid if i in (3, 4) else 1, T0 - 10**12,
                                                34816 if i == 4 else 0)))
        for cid, (image, ns) in CONTAINERS.items():
            self.snapshot.append(_ev(self.ts, "container", 0, 0, 0, "", args={
                "id": cid, "name": image.rsplit("/", 1)[-1] + "-7d9f", "image": image + ":latest",
                "image_repository": image, "image_tag": "latest", "type": "containerd", "privileged": "false",
                "k8s_ns": ns, "k8s_pod": image.rsplit("/", 1)[-1] + "-7d9f-x2"}))
        for uid, name in ((0, "root"), (33, "www-data"), (999, "postgres"), (1000, "alice")):
            self.snapshot.append(_ev(self.ts, "user", 0, 0, 0, "", args={
                "uid": str(uid), "name": name, "homedir": f"/home/{name}", "shell": "/bin/bash"}))

    def _tick(self) -> int:
        self.ts += self.rng.randrange(1_000, 50_000)
        return self.ts

    def events(self, n: int) -> list[Event]:
        out: list[Event] = []
        if self.snapshot:
            out, self.snapshot = self.snapshot, []
        rng = self.rng
        while len(out) < n:
            if self.pending_exits and rng.random() < 0.2:
                pid, ppid, comm = self.pending_exits.pop(0)
                out.append(_ev(self._tick(), "procexit", pid, ppid, 0, comm))
                continue
            r = rng.random()
            if r < 0.002 and self.pending_exits:  # now and then a fresh child reads a credential file: Falco alerts
                pid, ppid, comm = self.pending_exits[-1]
                out.append(_ev(self._tick(), "openat", pid, ppid, 0, comm, 3,
                               args={"name": "/etc/shadow", "flags": O_RDONLY_CLOEXEC, "mode": "0", "dirfd": "-100",
                                     "fd": "3"}))
            elif r < 0.80:
                i = rng.choice(BUSY)
                comm, _exe, _argv, uid, parent, _cid = TREE[i]
                pid = self.pids[i]
                if rng.random() < 0.8:
                    path, fl = rng.choice(READ_FILES), O_RDONLY_CLOEXEC
                else:
                    path, fl = rng.choice(WRITE_FILES)
                res = -2 if rng.random() < 0.05 else rng.randrange(3, 200)
                out.append(_ev(self._tick(), "openat", pid, self.pids[parent or 0], uid, comm[:15], res,
                               args={"name": path, "flags": fl, "mode": "0", "dirfd": "-100",
                                     "fd": str(res) if res >= 0 else ""}))
            elif r < 0.95:
                pi, comm, exe, argv = rng.choice(EXECS)
                ppid = self.pids[pi]
                pcomm, _, _, puid, _, pcid = TREE[pi]
                child = self.next_pid
                self.next_pid += 1
                out.append(_ev(self._tick(), "clone", ppid, 0, puid, pcomm[:15], child,
                               args={"child_pid": str(child), "child_tid": str(child), "flags": "CLONE_CHILD_SETTID"}))
                out.append(_ev(self._tick(), "execve", child, ppid, puid, comm[:15],
                               proc=_proc(exe, argv, pcid, ppid, self.ts, 34816 if pi == 4 else 0)))
                self.pending_exits.append((child, ppid, comm[:15]))
            else:
                i = rng.choice(BUSY[:7])
                comm, _exe, _argv, uid, parent, _cid = TREE[i]
                ip, port, l4 = rng.choice(CONNECTS)
                lport = str(rng.randrange(32768, 61000))
                out.append(_ev(self._tick(), "connect", self.pids[i], self.pids[parent or 0], uid, comm[:15], 0,
                               args={"fd": str(rng.randrange(3, 200)), "family": "2", "l4proto": l4,
                                     "sip": "10.244.1.5", "sport": lport, "dip": ip, "dport": port,
                                     "fd.name": f"10.244.1.5:{lport}->{ip}:{port}"}))
        return out

    def batch(self, n: int) -> dict[str, Any]:
        events = self.events(n)
        b = {"hostname": self.host, "sensor_id": f"{self.host}-bench", "batch_seq": self.batch_seq,
             "first_seq": self.seq, "events": events}
        self.seq += len(events)
        self.batch_seq += 1
        return b


def build_records(n_records: int, per_record: int, hosts: int, seed: int = 7) -> list[tuple[str, bytes]]:
    """(host, Avro bytes) records, hosts interleaved as a node fleet would send them."""
    from schemas.codec import encode_batch

    streams = [HostStream(f"node-{h:03d}", seed + h) for h in range(hosts)]
    return [(streams[i % hosts].host, encode_batch(streams[i % hosts].batch(per_record))) for i in range(n_records)]


def load_engine() -> Any:
    from processor.rules_source import build_engine
    from settings.config import Config

    texts = {name: (FALCO_RULES / name).read_text() for name in RULE_FILES}
    engine, report = build_engine(Config(), texts)
    if engine is None:
        raise SystemExit(f"Falco's rules did not load:\n{report}")
    return engine


# -- in-process --------------------------------------------------------------------------------------------------

def run_decode_only(records: list[tuple[str, bytes]]) -> int:
    from schemas.codec import decode_batch

    n = 0
    for _host, data in records:
        n += len(decode_batch(data)["events"])
    return n


def run_decode_fastavro(records: list[tuple[str, bytes]]) -> int:
    """fastavro alone on the same records: what decoding cost before the C reader (context, not the baseline)."""
    import io

    import fastavro

    from schemas.codec import event_batch_schema

    schema, n = event_batch_schema(), 0
    for _host, data in records:
        n += len(fastavro.schemaless_reader(io.BytesIO(data), schema)["events"])  # type: ignore[call-overload,index]
    return n


def run_pipeline(records: list[tuple[str, bytes]], engine: Any) -> tuple[int, int]:
    from processor.pipeline import process_batch
    from processor.state import HostState
    from schemas.codec import decode_batch, encode_alert

    state = HostState(procs={}, users={}, containers={})
    n = alerts = 0
    for _host, data in records:
        result = process_batch(decode_batch(data), state, engine)
        for a in result.alerts:
            encode_alert(a)
        n += result.events
        alerts += len(result.alerts)
    return n, alerts


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - c0, time.perf_counter() - w0, out


def _child(args: tuple[list[tuple[str, bytes]], bool]) -> tuple[int, float]:
    records, full = args
    engine = load_engine() if full else None
    start = time.perf_counter()
    n = run_pipeline(records, engine)[0] if full else run_decode_only(records)
    return n, time.perf_counter() - start


def in_process(records: list[tuple[str, bytes]], engine: Any, profile: bool) -> dict[str, float]:
    from settings.runtime import tune_gc

    tune_gc()  # the worker's garbage-collector settings, for both the baseline and the pipeline
    run_pipeline(records[: max(1, len(records) // 20)], engine)  # warm caches (flags, regexes)
    from schemas import codec

    reader = getattr(codec, "batch_reader", lambda: "fastavro")()  # (releases before the C reader: fastavro)
    cpu_f, _, n_f = timed(lambda: run_decode_fastavro(records))
    cpu_b, wall_b, n_b = timed(lambda: run_decode_only(records))
    cpu_p, wall_p, (n_p, alerts) = timed(lambda: run_pipeline(records, engine))
    base, pipe = n_b / cpu_b, n_p / cpu_p
    print(f"in-process fastavro : {n_f / cpu_f:,.0f} events/s per core (fastavro.schemaless_reader alone, for context)")
    print(f"in-process baseline : {base:,.0f} events/s per core (decode_batch and discard, {reader} reader; "
          f"wall {n_b / wall_b:,.0f}/s)")
    print(f"in-process pipeline : {pipe:,.0f} events/s per core (wall {n_p / wall_p:,.0f}/s), {alerts} alerts "
          f"({100 * alerts / n_p:.2f}%), {1e6 / pipe:.1f} us/event")
    print(f"  ratio pipeline/baseline = {pipe / base:.3f}; target {TARGET_PER_WORKER:,}/s per worker -> "
          f"{'met' if pipe >= TARGET_PER_WORKER else 'NOT met'}")
    if profile:
        prof = cProfile.Profile()
        prof.runcall(run_pipeline, records, engine)
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return {"baseline": base, "pipeline": pipe}


def two_processes(records: list[tuple[str, bytes]]) -> None:
    by_host: dict[str, list[tuple[str, bytes]]] = {}
    for r in records:
        by_host.setdefault(r[0], []).append(r)
    hosts = sorted(by_host)
    halves = [[r for h in hosts[i::2] for r in by_host[h]] for i in (0, 1)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        for full, label in ((False, "decode-only"), (True, "pipeline")):
            (n1, t1), = pool.map(_child, [(records, full)], chunksize=1)
            start = time.perf_counter()
            parts = pool.map(_child, [(h, full) for h in halves], chunksize=1)
            wall = time.perf_counter() - start
            n2 = sum(p[0] for p in parts)
            slowest = max(p[1] for p in parts)
            one, two = n1 / t1, n2 / slowest
            print(f"two processes {label:11s}: 1 proc {one:,.0f} events/s, 2 procs {two:,.0f} events/s "
                  f"(wall incl. start {n2 / wall:,.0f}/s) -> scaling {two / one:.2f}x")


# -- end to end through Kafka and Faust -----------------------------------------------------------------------

def end_to_end(records: list[tuple[str, bytes]], profile: bool = False) -> None:
    import dataclasses
    import shutil
    import signal
    import socket
    import subprocess
    import tempfile
    import threading

    import httpx
    import yaml
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient

    from deploy.local_kafka import LocalKafka
    from schemas.codec import event_batch_fingerprint
    from settings.config import Config, KafkaConfig
    from settings.kafka_clients import admin_config, producer_config

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    tmp = Path(tempfile.mkdtemp(prefix="peregrine-bench-"))
    port = free_port()
    cfg = Config(state_dir=str(tmp / "state"), hostname="bench")
    cfg.kafka = KafkaConfig(bootstrap_servers=f"127.0.0.1:{port}", port=port, controller_port=free_port())
    broker = LocalKafka(cfg)
    broker.start()
    rules = [str(FALCO_RULES / name) for name in RULE_FILES]
    total = sum(1 for _ in records)
    n_events = run_decode_only(records)
    try:
        def run(label: str, workers: int, extra: list[str], prof: Path | None = None) -> float:
            run_cfg = dataclasses.replace(cfg, worker=dataclasses.replace(cfg.worker, app_id=f"bench-{label}"))
            t = run_cfg.kafka.topics = dataclasses.replace(cfg.kafka.topics)
            t.events, t.alerts, t.events_dlq = f"ev-{label}", f"al-{label}", f"dlq-{label}"
            LocalKafka(run_cfg).create_topics()
            conf = tmp / f"{label}.yaml"
            conf.write_text(yaml.safe_dump(dataclasses.asdict(run_cfg), sort_keys=False))
            ports = [free_port() for _ in range(workers)]
            procs = []
            for i, mport in enumerate(ports):
                log = open(tmp / f"{label}-{i}.log", "ab")  # noqa: SIM115
                py = [sys.executable, "-m", "cProfile", "-o", str(prof)] if prof else [sys.executable]
                procs.append(subprocess.Popen(
                    [*py, "-m", "peregrine_cli.main", "-c", str(conf), "worker", "--rules", *rules,
                     "--metrics-port", str(mport), *extra], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True))
            # Records are produced once every worker holds partitions: a rebalance is not throughput.
            admin = AdminClient(admin_config(run_cfg.kafka))
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    desc = admin.describe_consumer_groups([run_cfg.worker.app_id])[run_cfg.worker.app_id].result(5)
                    assigned = [m for m in desc.members if any(
                        tp.topic == t.events for tp in m.assignment.topic_partitions)]
                    if len(desc.members) == workers and len(assigned) == workers and str(desc.state).endswith(
                            "STABLE"):
                        break
                except Exception:
                    pass
                time.sleep(0.5)
            else:
                raise SystemExit(f"{label}: workers did not join; logs in {tmp}")
            time.sleep(2)

            def produce() -> None:
                producer = Producer(producer_config(run_cfg.kafka, **{"linger.ms": 50}))
                for host, data in records:
                    producer.produce(t.events, key=host.encode(), value=data,
                                     headers=[("peregrine.schema", event_batch_fingerprint().encode())])
                    producer.poll(0)
                assert producer.flush(60) == 0

            threading.Thread(target=produce, daemon=True).start()
            # (wall, events, workers' CPU s, broker's CPU s, this process's CPU s: the producer thread and the polling)
            samples: list[tuple[float, float, float, float, float]] = []

            def cpu_seconds(pids: list[int]) -> float:
                tick = os.sysconf("SC_CLK_TCK")
                total = 0.0
                for pid in pids:
                    try:
                        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                        total += (int(fields[11]) + int(fields[12])) / tick
                    except (OSError, IndexError, ValueError):
                        pass
                return total

            broker_pid = broker.running_pid()

            deadline = time.monotonic() + 900
            try:
                while time.monotonic() < deadline:
                    done = 0.0
                    for mport in ports:
                        try:
                            text = httpx.get(f"http://127.0.0.1:{mport}/metrics", timeout=2).text
                        except httpx.HTTPError:
                            continue
                        for line in text.splitlines():
                            if line.startswith("falcosecurity_falco_num_evts_total "):
                                done += float(line.split()[1])
                    samples.append((time.monotonic(), done, cpu_seconds([p.pid for p in procs]),
                                    cpu_seconds([broker_pid] if broker_pid else []), time.process_time()))
                    if done >= n_events:
                        break
                    time.sleep(0.25)
            finally:
                for p in procs:
                    os.killpg(p.pid, signal.SIGTERM)
                for p in procs:
                    p.wait(60)
            started = [s for s in samples if s[1] > 0]
            if len(started) < 2 or started[-1][1] < n_events:
                raise SystemExit(f"{label}: workers did not finish ({started[-1:]}); logs in {tmp}")
            # Rate from the first counted batch to the end: startup and rebalance are not throughput.
            (t_a, n_a, c_a, k_a, b_a), (t_b, n_b, c_b, k_b, b_b) = started[0], started[-1]
            rate = (n_b - n_a) / (t_b - t_a)
            print(f"end to end {label:12s}: {workers} worker(s), {rate:,.0f} events/s "
                  f"({n_b - n_a:,.0f} events in {t_b - t_a:.1f}s; workers' CPU {c_b - c_a:.1f}s = "
                  f"{(n_b - n_a) / max(c_b - c_a, 1e-9):,.0f} events per CPU-second; cores used: workers "
                  f"{(c_b - c_a) / (t_b - t_a):.2f}, broker {(k_b - k_a) / (t_b - t_a):.2f}, this bench (producer, "
                  f"polling) {(b_b - b_a) / (t_b - t_a):.2f}, of {os.cpu_count()})")
            return rate

        if profile:
            kept = Path(tempfile.gettempdir()) / "peregrine-worker.prof"
            run("profiled", 1, [], prof=kept)
            pstats.Stats(str(kept)).sort_stats("tottime").print_stats(30)
            print(f"profile kept in {kept}")
            return
        base = run("decode-only", 1, ["--decode-only"])
        one = run("one", 1, [])
        two = run("two", 2, [])
        print(f"  end to end: worker/decode-only = {one / base:.3f}; two workers / one = {two / one:.2f}x "
              f"(target 1.8x); records {total}")
    finally:
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, Linux {platform.release()}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200, help="Kafka records (default 200)")
    ap.add_argument("--batch", type=int, default=1000, help="events per record (default 1000)")
    ap.add_argument("--hosts", type=int, default=16, help="hosts (default 16)")
    ap.add_argument("--profile", action="store_true", help="cProfile the in-process pipeline")
    ap.add_argument("--two", action="store_true", help="also run the two-process in-process split")
    ap.add_argument("--e2e", action="store_true", help="also run real Faust workers through a local Kafka broker")
    ap.add_argument("--profile-worker", action="store_true", help="cProfile one real worker draining the records")
    args = ap.parse_args(argv)
    print(f"machine  : {machine()}")
    t = time.perf_counter()
    engine = load_engine()
    print(f"rules    : {', '.join(RULE_FILES)} ({len(engine.rule_names())} rules, {time.perf_counter() - t:.2f}s)")
    records = build_records(args.records, args.batch, args.hosts)
    mb = sum(len(r[1]) for r in records) / 1e6
    print(f"records  : {len(records)} x {args.batch} events, {args.hosts} hosts, {mb:.1f} MB Avro "
          f"({1e6 * mb / len(records) / args.batch:.0f} bytes/event)")
    in_process(records, engine, args.profile)
    if args.two:
        two_processes(records)
    if args.e2e or args.profile_worker:
        end_to_end(records, args.profile_worker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
