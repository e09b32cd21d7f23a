"""Sensor benchmark: one syscall-heavy workload (bench/openclose.c, open+close of one file in a loop) run four
ways in one run -- no monitor, the Peregrine sensor shipping to Kafka, auditd with an equivalent rule, and a bare
bcc probe (also without a wakeup per record, `bcc_batched`, the floor for any probe that ships each event; and two
floors under any probe at all: `bcc_attach`, the program attached and filtering, and `bcc_clock`, that plus one clock
read per event, neither shipping anything) --
plus the shipping half alone (pre-built events batched, encoded and produced to Kafka in-process).

Reports each slowdown against the unmonitored run of the same invocation, events shipped per second, events per
Kafka record and drops. Needs root. auditd is installed on demand (apt-get) unless --no-install.

    .venv/bin/python bench/sensor_bench.py [--iterations 500000] [--skip auditd] [--json out.json]
    .venv/bin/python bench/sensor_bench.py --sweep 50000,100000,200000,300000   # highest zero-loss rate
    .venv/bin/python bench/sensor_bench.py --sweep ... --sweep-rules ../shared/falco-rules/falco_rules.yaml
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deploy.local_kafka import LocalKafka  # noqa: E402
from settings.config import Config, KafkaConfig  # noqa: E402

AUDIT_KEY = "peregrine-bench"
# The sensor's equivalent of the auditd rule: the rules decide the traced set (plus the process/fd state set).
BENCH_RULES = """- rule: Bench open close
  desc: every open and close, the equivalent of the benchmark's auditd rule
  condition: evt.type in (open, openat, openat2, close)
  output: "%evt.type %fd.name (proc=%proc.name)"
  priority: DEBUG
"""
BCC_PROBE = r"""
import ctypes, sys, time
from bcc import BPF
prog = '''
BPF_RINGBUF_OUTPUT(events, 1024);
BPF_PERCPU_ARRAY(lost, u64, 1);
struct rec { u32 pid; u32 nr; s64 ret; u64 ts; };
BPF_PERCPU_ARRAY(clk, u64, 1);
TRACEPOINT_PROBE(raw_syscalls, sys_exit) {
    long nr = args->id;
    if (nr != 2 && nr != 3 && nr != 257 && nr != 437) return 0;
    FLOOR
    struct rec r = {};
    r.pid = bpf_get_current_pid_tgid() >> 32; r.nr = nr; r.ret = args->ret; r.ts = bpf_ktime_get_ns();
    if (events.ringbuf_output(&r, sizeof(r), WAKE)) { u32 k = 0; u64 *c = lost.lookup(&k); if (c) *c += 1; }
    return 0;
}
'''
mode = sys.argv[1] if sys.argv[1:] else ""
batched = mode != ""  # no wakeup per record; the reader looks every millisecond instead
# The floors under any probe: "attach" runs the program and filters (the tracepoint's own cost), "clock" also reads
# the boot clock every event needs; neither ships anything.
floor = {"attach": "return 0;", "clock": "u32 k0 = 0; u64 *t = clk.lookup(&k0); if (t) *t = bpf_ktime_get_boot_ns(); return 0;"}
b = BPF(text=prog.replace("WAKE", "BPF_RB_NO_WAKEUP" if batched else "0").replace("FLOOR", floor.get(mode, "")))
count = [0]
def cb(ctx, data, size):
    count[0] += 1
b["events"].open_ring_buffer(cb)
print("ready", flush=True)
try:
    while True:
        if batched:
            b.ring_buffer_consume()
            time.sleep(0.001)
        else:
            b.ring_buffer_poll(100)
        if sys.stdin in __import__("select").select([sys.stdin], [], [], 0)[0]:
            break
except KeyboardInterrupt:
    pass
b.ring_buffer_consume()
lost = sum(sum(int(x) for x in v) for v in b["lost"].values())
print(f'{{"events": {count[0]}, "drops": {lost}}}', flush=True)
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def compile_workload(work: Path) -> Path:
    binary = work / "openclose"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(ROOT / "bench" / "openclose.c")], check=True)
    return binary


@dataclass
class Runs:
    """Repeated workload runs: wall seconds and the workload's own CPU seconds (user + system, where in-kernel
    probe work is charged). CPU time is the steadier measure on a shared machine; both are reported."""

    wall: list[float]
    cpu: list[float]

    def summary(self) -> dict[str, float]:
        return {"seconds": statistics.median(self.wall), "cpu_seconds": statistics.median(self.cpu)}


def run_workload(binary: Path, iterations: int, target: Path, rate: float = 0) -> tuple[float, float]:
    argv = [str(binary), str(iterations), str(target)] + ([str(rate)] if rate else [])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"the workload failed with {proc.returncode}")
    return float(json.loads(out)["seconds"]), usage.ru_utime + usage.ru_stime


def repeat(binary: Path, iterations: int, target: Path, times: int, between: Any = None) -> Runs:
    runs = Runs([], [])
    for _ in range(times):
        wall, cpu = run_workload(binary, iterations, target)
        runs.wall.append(wall)
        runs.cpu.append(cpu)
        if between is not None:
            between()
    return runs


# -- Peregrine ------------------------------------------------------------------------------------------------
def scrape(port: int) -> dict[str, float]:
    """Flattened metrics: name{labels} -> value, plus per-name sums."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
            out[sample.name + ":sum"] = out.get(sample.name + ":sum", 0.0) + sample.value
    return out


def longest_bucket(after: dict[str, float], before: dict[str, float]) -> str:
    """The smallest loop-turn bucket bound that holds every turn of the interval."""
    count = after.get("peregrine_sensor_loop_turn_seconds_count", 0.0) - before.get(
        "peregrine_sensor_loop_turn_seconds_count", 0.0)
    bounds = sorted((float(k.split("le=")[1].rstrip("}")), k) for k in after
                    if k.startswith("peregrine_sensor_loop_turn_seconds_bucket{") and "+Inf" not in k)
    for bound, key in bounds:
        if after[key] - before.get(key, 0.0) >= count:
            return f"<= {bound:g} s"
    return "> the largest bucket"


def sensor_env(state: Path, broker: LocalKafka, metrics_port: int) -> dict[str, str]:
    return dict(os.environ, PEREGRINE_STATE_DIR=str(state), PEREGRINE_HOSTNAME="bench-host",
                PEREGRINE_KAFKA__BOOTSTRAP_SERVERS=broker.bootstrap, PEREGRINE_SENSOR__METRICS_PORT=str(metrics_port))


def wait_shipped(port: int, timeout_s: float) -> dict[str, float]:
    """Until every event captured so far is published (the sensor caught up), or timeout. Other processes keep
    producing events, so "caught up" is judged against what was captured when the wait began."""
    deadline = time.monotonic() + timeout_s
    target = scrape(port).get("falcosecurity_scap_n_evts_total", 0.0)
    now = scrape(port)
    while time.monotonic() < deadline:
        if now.get("peregrine_sensor_events_published_total:sum", 0.0) >= target:
            break
        time.sleep(0.2)
        now = scrape(port)
    return now


@contextlib.contextmanager
def peregrine_sensor(broker: LocalKafka, work: Path, rules_files: list[str] | None = None) -> Iterator[int]:
    """`peregrine sensor` with the bench rule (or the given rules files), shipping to the broker; yields its metrics
    port once healthy."""
    port = free_port()
    if not rules_files:
        rules = work / "bench_rules.yaml"
        rules.write_text(BENCH_RULES)
        rules_files = [str(rules)]
    cmd = [sys.executable, "-m", "peregrine_cli.main", "sensor", "--rules", *rules_files]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=sensor_env(work / "sensor-state", broker, port),
                            stdout=subprocess.DEVNULL, stderr=open(work / "sensor.log", "wb"))  # noqa: SIM115
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the sensor exited with {proc.returncode}: see {work / 'sensor.log'}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the sensor did not become healthy in 180 s")
            time.sleep(0.5)
        yield port
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(120)


# The counters the sensor copies from the probe once a second: read again after that second has passed.
SYNCED_1S = ("falcosecurity_scap_n_drops_total", "peregrine_sensor_ringbuf_deferred_records_total")


def settled(port: int) -> dict[str, float]:
    """Metrics once the sensor caught up, with the probe's drop counters as of now (synced to /metrics 1/s)."""
    after = wait_shipped(port, 300)
    time.sleep(1.5)
    final = scrape(port)
    after.update({k: v for k, v in final.items() if k.startswith(SYNCED_1S)})
    return after


def run_peregrine(binary: Path, iterations: int, target: Path, times: int, broker: LocalKafka,
                  work: Path) -> dict[str, Any]:
    with peregrine_sensor(broker, work) as port:
        before = wait_shipped(port, 30)
        t0 = time.monotonic()
        runs = repeat(binary, iterations, target, times, between=lambda: wait_shipped(port, 300))
        after = wait_shipped(port, 300)
        elapsed = time.monotonic() - t0
        time.sleep(1.5)  # the sensor moves the probe's drop counters to /metrics once a second
        final = scrape(port)
        after.update({k: v for k, v in final.items() if k.startswith(SYNCED_1S)})

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    published = delta("peregrine_sensor_events_published_total:sum")
    records = delta("peregrine_sensor_records_published_total")
    return {**runs.summary(), "captured": delta("falcosecurity_scap_n_evts_total"), "published": published,
            "records": records, "events_per_record": published / records if records else 0.0,
            "shipped_per_s": published / elapsed if elapsed else 0.0, "ship_window_s": elapsed,
            "drops": delta("falcosecurity_scap_n_drops_total:sum"),
            "deferred": delta("peregrine_sensor_ringbuf_deferred_records_total"),
            "drops_by_reason": {k: after[k] - before.get(k, 0.0) for k in after
                                if k.startswith("falcosecurity_scap_n_drops_total{")}}


@dataclass
class MemorySource:
    """Pre-built event dicts, as the capture hands them over: measures the shipping half alone."""

    chunks: list[list[dict[str, Any]]]
    finished: bool = False

    def start(self) -> None:
        pass

    def poll(self, timeout_ms: int) -> list[dict[str, Any]]:
        if not self.chunks:
            self.finished = True
            return []
        return self.chunks.pop(0)

    def drops(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        pass


def run_shipping_half(events: int, broker: LocalKafka, work: Path) -> dict[str, Any]:
    """Batching, Avro encoding and producing to Kafka of open/close events, until Kafka acknowledged all."""
    from sensor.agent import Agent

    base = time.time_ns()
    flat: list[dict[str, Any]] = []
    for i in range(events):
        opened = i % 2 == 0
        flat.append({"ts": base + i * 1000, "type": "openat" if opened else "close", "tid": 4242, "pid": 4242,
                     "ppid": 1, "uid": 0, "gid": 0, "euid": 0, "loginuid": -1, "comm": "openclose",
                     "res": 3 if opened else 0,
                     "args": ({"name": "/tmp/peregrine-bench/target", "flags": "524288", "mode": "0", "fd": "3",
                               "dirfd": "-100"} if opened else {"fd": "3"}), "proc": None})
    chunks = [flat[i:i + 2048] for i in range(0, events, 2048)]
    cfg = Config(state_dir=str(work / "ship-state"), hostname="bench-host")
    cfg.kafka = KafkaConfig(bootstrap_servers=broker.bootstrap)
    cfg.sensor.metrics_port = 0
    agent = Agent(cfg, MemorySource(chunks))
    try:
        from settings.runtime import tune_gc
    except ImportError:  # an older checkout (A/B runs): its default collector settings
        pass
    else:
        tune_gc()  # as `peregrine sensor` runs
    t0 = time.monotonic()
    agent.run(install_signals=False)
    elapsed = time.monotonic() - t0
    assert agent.shipper is not None
    publisher = agent.shipper.publisher
    return {"events": events, "seconds": elapsed, "shipped_per_s": publisher.delivered_events / elapsed,
            "records": publisher.delivered_records,
            "events_per_record": publisher.delivered_events / max(1, publisher.delivered_records),
            "drops": sum(agent.drops().values())}


def run_sweep(binary: Path, target: Path, rates: list[int], seconds: float, broker: LocalKafka,
              work: Path, rules_files: list[str] | None = None) -> list[dict[str, Any]]:
    """The workload paced at each offered rate (syscalls/s) for `seconds`, one sensor for all: what is shipped
    and what is dropped at each rate. Zero loss = no drop counted for any reason (ring buffer, scratch, queue,
    journal) while the sensor catches up after each rate. Each rate also runs once unmonitored first, so the
    workload's CPU slowdown says what the probe costs when nothing is dropped."""
    out = []
    unmonitored = {rate: run_workload(binary, max(256, int(rate * seconds / 2)), target, rate)[1] for rate in rates}
    with peregrine_sensor(broker, work, rules_files) as port:
        for rate in rates:
            before = settled(port)
            t0 = time.monotonic()
            wall, cpu = run_workload(binary, max(256, int(rate * seconds / 2)), target, rate)
            after = settled(port)

            def delta(name: str, a: dict[str, float] = after, b: dict[str, float] = before) -> float:
                return a.get(name, 0.0) - b.get(name, 0.0)

            captured, published = delta("falcosecurity_scap_n_evts_total"), \
                delta("peregrine_sensor_events_published_total:sum")
            drops = delta("falcosecurity_scap_n_drops_total:sum")
            state_only = delta("peregrine_sensor_events_state_only_total:sum")
            records = delta("peregrine_sensor_records_published_total")
            row = {"offered_per_s": rate, "achieved_per_s": round(2 * max(256, int(rate * seconds / 2)) / wall),
                   "workload_cpu_s": round(cpu, 3), "workload_cpu_unmonitored_s": round(unmonitored[rate], 3),
                   "cpu_slowdown": round(cpu / unmonitored[rate], 3) if unmonitored[rate] else None,
                   "captured": captured, "published": published, "drops": drops,
                   "events_per_record": round(published / records) if records else 0,
                   "catch_up_s": round(time.monotonic() - t0 - wall, 1),
                   "drops_by_reason": {k.split("{", 1)[1].rstrip("}"): delta(k) for k in after
                                       if k.startswith("falcosecurity_scap_n_drops_total{") and delta(k)},
                   # Other processes' events keep arriving (the capture is system-wide): "in flight" is what was
                   # captured but not yet published when the counters were read, not a loss.
                   "state_only": state_only, "in_flight": max(0.0, captured - state_only - published),
                   "zero_loss": drops == 0,
                   # refused by the ring buffer with room to spare, sent late with their CPU's next record
                   "deferred": delta("peregrine_sensor_ringbuf_deferred_records_total"),
                   "journaled_batches": delta("peregrine_sensor_journaled_batches_total"),
                   # loop turns over 0.1 s and over 0.25 s (the 16 MiB ring buffer's span at 300k events/s ~0.3 s)
                   "turns_over_0.1s": delta("peregrine_sensor_loop_turn_seconds_count")
                   - delta('peregrine_sensor_loop_turn_seconds_bucket{le=0.1}'),
                   "turns_over_0.25s": delta("peregrine_sensor_loop_turn_seconds_count")
                   - delta('peregrine_sensor_loop_turn_seconds_bucket{le=0.25}'),
                   "longest_turn_bucket": longest_bucket(after, before),
                   # the sensor's own CPU (user + system, its process_cpu_seconds_total) over the rate and catch-up
                   "sensor_cpu_s": round(delta("process_cpu_seconds_total"), 2),
                   "sensor_cpu_us_per_event": round(delta("process_cpu_seconds_total") / captured * 1e6, 2)
                   if captured else None}
            print("sweep", row, flush=True)
            out.append(row)
    return out


# -- auditd -------------------------------------------------------------------------------------------------------
def ensure_auditd(install: bool) -> str | None:
    if shutil.which("auditctl") and shutil.which("auditd"):
        return None
    if not install:
        return "auditd is not installed (--no-install)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "auditd"], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return f"apt-get install auditd failed: {proc.stderr.strip()[-300:]}"
    return None


def run_auditd(binary: Path, iterations: int, target: Path, times: int, work: Path) -> dict[str, Any]:
    log = work / "audit.log"
    conf = work / "auditd.conf"
    conf.write_text(f"log_file = {log}\nlog_format = RAW\nflush = INCREMENTAL_ASYNC\nfreq = 50\nmax_log_file = 4096\n"
                    "max_log_file_action = ROTATE\nnum_logs = 2\ndisp_qos = lossy\nspace_left = 100\n"
                    "admin_space_left = 50\ndisk_full_action = SUSPEND\ndisk_error_action = SUSPEND\n")
    os.chmod(conf, 0o640)
    was_enabled = audit_status("enabled")
    daemon = subprocess.Popen(["auditd", "-n", "-c", str(work)], stdout=subprocess.DEVNULL,
                              stderr=open(work / "auditd.stderr", "wb"))
    try:
        time.sleep(2)
        if daemon.poll() is not None:
            raise RuntimeError(f"auditd exited: {(work / 'auditd.stderr').read_text().strip()[-300:]}")
        subprocess.run(["auditctl", "-D"], check=True, capture_output=True)
        subprocess.run(["auditctl", "-b", "65536", "--backlog_wait_time", "0"], capture_output=True)
        lost0 = audit_lost()
        subprocess.run(["auditctl", "-a", "always,exit", "-F", "arch=b64", "-S", "open,openat,openat2,close",
                        "-k", AUDIT_KEY], check=True, capture_output=True)
        runs = repeat(binary, iterations, target, times)
        subprocess.run(["auditctl", "-D"], check=True, capture_output=True)
        lost = audit_lost() - lost0
    finally:
        subprocess.run(["auditctl", "-D"], capture_output=True)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        subprocess.run(["auditctl", "-e", str(was_enabled)], capture_output=True)  # auditd leaves auditing on
    logged = 0
    for path in work.glob("audit.log*"):
        with open(path, "rb") as f:
            logged += sum(1 for line in f if line.startswith(b"type=SYSCALL") and AUDIT_KEY.encode() in line)
    return {**runs.summary(), "logged": logged, "drops": lost}


def audit_status(key: str) -> int:
    out = subprocess.run(["auditctl", "-s"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith(key + " "):
            return int(line.split()[1])
    return 0


def audit_lost() -> int:
    return audit_status("lost")


# -- bare bcc -----------------------------------------------------------------------------------------------------
def run_bcc(binary: Path, iterations: int, target: Path, times: int, mode: str = "") -> dict[str, Any]:
    """The bare probe; "batched": without a wakeup per record (as Peregrine's probe), the reader polling; "attach"
    and "clock": the floors (the program attached and filtering; that and a clock read), shipping nothing."""
    proc = subprocess.Popen([sys.executable, "-c", BCC_PROBE] + ([mode] if mode else []), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("the bcc probe did not start")
    runs = repeat(binary, iterations, target, times)
    time.sleep(1)
    proc.stdin.write("stop\n")
    proc.stdin.flush()
    result = json.loads(proc.stdout.readline())
    proc.wait(60)
    return {**runs.summary(), **result}


# -- the run --------------------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=500_000, help="open+close pairs per run")
    parser.add_argument("--repeat", type=int, default=3, help="workload runs per mode (medians reported)")
    parser.add_argument("--ship-events", type=int, default=1_000_000, help="events for the shipping-half run")
    parser.add_argument("--skip", action="append", default=[], choices=["peregrine", "auditd", "bcc", "bcc-batched", "bcc-attach", "bcc-clock", "ship"])
    parser.add_argument("--no-install", action="store_true", help="do not apt-get install auditd")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--sweep", help="only the zero-loss sweep: comma-separated offered rates (syscalls/s)")
    parser.add_argument("--sweep-seconds", type=float, default=5.0, help="workload seconds per sweep rate")
    parser.add_argument("--sweep-rules", nargs="+", help="rules files for the sweep's sensor (default: the bench "
                        "rule on open/openat/openat2/close, the auditd rule's equivalent)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("sensor_bench: run as root (eBPF, auditd)", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="peregrine-sensor-bench-"))
    binary = compile_workload(work)
    target = work / "target"
    target.write_text("x")
    results: dict[str, Any] = {"iterations": args.iterations, "machine": machine()}
    cfg = Config(state_dir=str(work / "kafka-state"))
    cfg.kafka = KafkaConfig(bootstrap_servers="", port=free_port(), controller_port=free_port())
    broker = LocalKafka(cfg)
    broker.cfg.kafka.bootstrap_servers = broker.bootstrap
    if args.sweep:
        try:
            broker.start()
            rows = run_sweep(binary, target, [int(r) for r in args.sweep.split(",")], args.sweep_seconds, broker,
                             work, args.sweep_rules)
        finally:
            broker.stop()
        best = max((r["offered_per_s"] for r in rows if r["zero_loss"]), default=0)
        summary = {"machine": machine(), "sweep": rows, "highest_zero_loss_offered_per_s": best}
        print(json.dumps(summary, indent=2))
        if args.json:
            args.json.write_text(json.dumps(summary, indent=2))
        shutil.rmtree(work, ignore_errors=True)
        return 0
    try:
        if "peregrine" not in args.skip or "ship" not in args.skip:
            broker.start()
        run_workload(binary, args.iterations // 10, target)  # warm caches
        results["none"] = repeat(binary, args.iterations, target, args.repeat).summary()
        print("none", results["none"], flush=True)
        if "peregrine" not in args.skip:
            results["peregrine"] = run_peregrine(binary, args.iterations, target, args.repeat, broker, work)
            print("peregrine", results["peregrine"], flush=True)
        if "auditd" not in args.skip:
            reason = ensure_auditd(not args.no_install)
            results["auditd"] = {"skipped": reason} if reason else run_auditd(binary, args.iterations, target,
                                                                                 args.repeat, work)
            print("auditd", results["auditd"], flush=True)
        if "bcc" not in args.skip:
            results["bcc"] = run_bcc(binary, args.iterations, target, args.repeat)
            print("bcc", results["bcc"], flush=True)
        for mode in ("batched", "attach", "clock"):
            if f"bcc-{mode}" not in args.skip:
                results[f"bcc_{mode}"] = run_bcc(binary, args.iterations, target, args.repeat, mode)
                print(f"bcc_{mode}", results[f"bcc_{mode}"], flush=True)
        results["none_after"] = repeat(binary, args.iterations, target, args.repeat).summary()
        if "ship" not in args.skip:
            results["ship"] = run_shipping_half(args.ship_events, broker, work)
            print("ship", results["ship"], flush=True)
    finally:
        broker.stop()
    base = (results["none"]["seconds"] + results["none_after"]["seconds"]) / 2
    base_cpu = (results["none"]["cpu_seconds"] + results["none_after"]["cpu_seconds"]) / 2
    for mode in ("peregrine", "auditd", "bcc", "bcc_batched", "bcc_attach", "bcc_clock"):
        if "seconds" in results.get(mode, {}):
            results[mode]["slowdown"] = results[mode]["seconds"] / base
            results[mode]["cpu_slowdown"] = results[mode]["cpu_seconds"] / base_cpu
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    return f"{os.cpu_count()} x {cpu}, kernel {os.uname().release}, load {os.getloadavg()[0]:.1f}"


if __name__ == "__main__":
    sys.exit(main())
