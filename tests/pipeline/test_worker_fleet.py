"""Two workers on the real broker, shared by the tests of this module (a Faust worker takes 10-20 s to start):
partitions shared, dead-lettering, rules published while running, /metrics, and last a `kill -9` mid-stream
with a replacement joining (the rebalances faust-streaming #596/#606/#502 are about).

Every test asserts on the alerts topic against the alerts the same rules give in-process over the same batches
(`process_batch`): the exact set of deterministic ids, each with the fields state must provide.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from deploy.local_kafka import LocalKafka
from processor.pipeline import process_batch
from processor.rules_source import build_engine, publish_rules
from processor.state import HostState
from settings.config import Config
from tests.conftest import free_port, make_config
from tests.pipeline.helpers import (
    SHADOW_RULES,
    alerts_consumer,
    batch,
    committed_offsets,
    end_offsets,
    event,
    group_assignment,
    metric_sum,
    metrics_samples,
    proc_info,
    produce_batches,
    read_alerts,
    read_topic,
    spawn,
    stop,
    write_config,
)

pytestmark = pytest.mark.kafka

RULES = SHADOW_RULES
NEW_RULE = """
- rule: Passwd file opened
  desc: published while the workers run
  condition: evt.type in (open, openat, openat2) and fd.name = /etc/passwd
  output: passwd read (proc.name=%proc.name parent=%proc.pname)
  priority: NOTICE
"""
BAD_RULES = """
- rule: Broken rule
  desc: does not compile
  condition: evt.type = openat and no.such.field = 1
  output: never
  priority: WARNING
"""
T0 = 1_700_000_000_000_000_000


@dataclass
class Fleet:
    cfg: Config
    conf: Path
    rules: Path
    logs: Path
    workers: dict[str, Any] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def start(self, name: str) -> None:
        self.ports[name] = free_port()
        self.workers[name] = spawn(self.conf, "worker", "--rules", str(self.rules), "--metrics-port",
                                   str(self.ports[name]), log=self.logs / f"{name}.log")

    def log_tail(self) -> str:
        return "\n".join(f"== {n}\n" + (self.logs / f"{n}.log").read_text()[-2000:] for n in self.workers)

    def metric(self, name: str, only: str | None = None, **labels: str) -> float:
        return sum(metric_sum(metrics_samples(p), name, **labels) for n, p in self.ports.items()
                   if (only is None or n == only) and self.workers[n].poll() is None)

    def wait(self, what: str, cond: Any, timeout: float = 90, state: Any = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what} ({state() if state else ''})\n{self.log_tail()}")

    def publish(self, path: Path, text: str, until: str, metric: str, **labels: str) -> None:
        """Publish a rules file straight to the topic and wait until both workers' `metric` went up by one."""
        before = self.metric(metric, **labels)
        path.write_text(text)
        publish_rules(self.cfg, [str(path)])
        self.wait(until, lambda: self.metric(metric, **labels) - before >= 2)


@pytest.fixture(scope="module")
def fleet(kafka_broker: LocalKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("fleet")
    cfg = make_config(tmp / "state", kafka_broker.cfg.kafka.port, kafka_broker.cfg.kafka.controller_port)
    t = cfg.kafka.topics
    t.events, t.alerts, t.rules, t.events_dlq, t.hunt = (f"{n}-{tmp.name}" for n in ("ev", "al", "ru", "dlq", "hu"))
    cfg.worker.app_id = f"w-{tmp.name}"
    LocalKafka(cfg).create_topics()
    rules = tmp / "rules.yaml"
    rules.write_text(RULES)
    f = Fleet(cfg, write_config(cfg, tmp / "peregrine.yaml"), rules, tmp)
    f.start("a")
    f.start("b")
    try:
        f.wait("two workers with partitions each", lambda: _two_members_assigned(cfg), timeout=120)
        yield f
    finally:
        for proc in f.workers.values():
            stop(proc)


def _two_members_assigned(cfg: Config) -> bool:
    try:
        members = group_assignment(cfg)
    except Exception:
        return False
    return len(members) == 2 and all(members.values())


# -- known events and the alerts they must give ------------------------------------------------------------

def opening(host: str, seq: int, path: str, ts: int, pid: int = 200) -> dict[str, Any]:
    return event(ts, "openat", pid, ppid=100, comm="cat", res=3, args={"name": path, "flags": "0", "fd": "3"})


def genesis(host: str, first_seq: int = 1) -> dict[str, Any]:
    """Lifecycle: systemd -> sshd -> bash -> cat (pid 200), and one shadow read."""
    return batch(host, first_seq, [
        event(T0, "snapshot", 1, comm="systemd", proc=proc_info("/usr/lib/systemd/systemd", ["/sbin/init"])),
        event(T0, "snapshot", 50, ppid=1, comm="sshd", proc=proc_info("/usr/sbin/sshd", ["sshd", "-D"])),
        event(T0, "snapshot", 100, ppid=50, comm="bash", proc=proc_info("/usr/bin/bash", ["-bash"])),
        event(T0 + 1, "clone", 100, comm="bash", res=200, args={"child_pid": "200", "child_tid": "200"}),
        event(T0 + 2, "execve", 200, ppid=100, comm="cat", proc=proc_info("/usr/bin/cat", ["cat", "/etc/shadow"])),
        opening(host, first_seq + 5, "/etc/shadow", T0 + 3),
    ])


def reads(host: str, first_seq: int, n: int, batch_seq: int, path: str = "/etc/shadow") -> dict[str, Any]:
    """Only reads by pid 200: its parent and grandparent must come from state (the changelog after a move)."""
    return batch(host, first_seq, [opening(host, first_seq + i, path if i % 2 == 0 else "/etc/hosts",
                                           T0 + 10 * first_seq + i) for i in range(n)], batch_seq=batch_seq)


def expected_alerts(cfg: Config, rule_texts: dict[str, str], batches: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    engine, report = build_engine(cfg, rule_texts)
    assert engine is not None, report
    state = HostState(procs={}, users={}, containers={})
    out: dict[str, dict[str, Any]] = {}
    for b in batches:
        for a in process_batch(b, state, engine).alerts:
            out[a["uuid"]] = a
    return out


def assert_same_alerts(got: list[dict[str, Any]], want: dict[str, dict[str, Any]]) -> None:
    ids = [a["uuid"] for a in got]
    assert set(ids) == set(want), f"missing {len(set(want) - set(ids))}, unexpected {len(set(ids) - set(want))}"
    for a in got:  # a duplicate is only ever a replay: same id, same alert
        w = want[a["uuid"]]
        assert (a["hostname"], a["rule"], a["output_fields"]) == (w["hostname"], w["rule"], w["output_fields"])


def hosts_alerts(cfg: Config, hosts: set[str], want: int, timeout: float = 90, linger: float = 0) -> list[dict[str, Any]]:
    """Every alert of these hosts on the topic (a fresh group reads from the start) once `want` distinct ids are
    there, plus whatever arrives in the next `linger` seconds (late replays)."""
    consumer = alerts_consumer(cfg)
    got: list[dict[str, Any]] = []

    def enough(seen: list[dict[str, Any]]) -> bool:
        got[:] = [a for a in seen if a["hostname"] in hosts]
        return len({a["uuid"] for a in got}) >= want

    try:
        seen = read_alerts(consumer, enough, timeout=timeout)
        if linger:
            seen += read_alerts(consumer, lambda _a: False, timeout=linger)
    finally:
        consumer.close()
    return [a for a in seen if a["hostname"] in hosts]


# -- tests ----------------------------------------------------------------------------------------------------

def test_two_workers_share_partitions_and_alert_once_per_id(fleet: Fleet) -> None:
    cfg = fleet.cfg
    hosts = [f"share-{i:02d}" for i in range(16)]
    batches = [genesis(h) for h in hosts] + [reads(h, 7, 6, 1) for h in hosts]
    want = expected_alerts(cfg, {"rules.yaml": RULES}, batches)
    assert len(want) == 16 * 4
    produce_batches(cfg, batches)
    got = hosts_alerts(cfg, set(hosts), len(want))
    assert_same_alerts(got, want)
    assert all(a["output_fields"]["proc.pname"] == "bash" for a in got)
    per_worker = {n: {lbl for (name, lbl), v in metrics_samples(p).items()
                      if name == "peregrine_worker_records_total" and v > 0} for n, p in fleet.ports.items()}
    assert per_worker["a"] and per_worker["b"], per_worker  # both workers consumed records
    members = group_assignment(cfg)
    assert len(members) == 2 and all(members.values()), members
    assert set().union(*members.values()) == set(range(cfg.kafka.events_partitions))


def test_undecodable_records_go_to_the_dlq_and_good_ones_around_them_alert(fleet: Fleet) -> None:
    from confluent_kafka import Producer

    from schemas.codec import encode_batch
    from settings.kafka_clients import producer_config

    cfg = fleet.cfg
    host = "dlq-host"
    good = [genesis(host), reads(host, 7, 4, 1), reads(host, 11, 4, 2)]
    want = expected_alerts(cfg, {"rules.yaml": RULES}, good)
    dlq_before = fleet.metric("peregrine_worker_dlq_records_total", reason="decode")
    producer = Producer(producer_config(cfg.kafka))
    for i, b in enumerate(good):  # same key: one partition, good records between and around the garbage
        producer.produce(cfg.kafka.topics.events, key=host.encode(), value=encode_batch(b))
        if i < 2:
            for j in range(500):
                producer.produce(cfg.kafka.topics.events, key=host.encode(), value=b"\x00garbage %d" % j)
    assert producer.flush(30) == 0
    got = hosts_alerts(cfg, {host}, len(want))
    assert_same_alerts(got, want)
    dead = read_topic(cfg, cfg.kafka.topics.events_dlq, lambda m: len(m) >= 1000, timeout=60)
    assert len(dead) == 1000
    headers = dict(dead[0].headers())
    topic, partition, offset = headers["peregrine.source"].decode().split(":")
    assert topic == cfg.kafka.topics.events and int(partition) >= 0 and int(offset) >= 1
    assert headers["peregrine.reason"] == b"decode" and b"EventBatch" in headers["peregrine.error"]
    assert dead[0].value().startswith(b"\x00garbage")
    fleet.wait("1000 DLQ records on /metrics", lambda: fleet.metric(
        "peregrine_worker_dlq_records_total", reason="decode") - dlq_before == 1000, timeout=15)


def test_records_of_an_older_sensor_release_alert_and_an_unknown_schema_is_dead_lettered(fleet: Fleet) -> None:
    """A rolling upgrade: a sensor still writing the schema before ProcInfo.vpgid is read by its header's schema;
    a record naming a schema this worker does not know goes to the DLQ instead of being misread."""
    import io

    import fastavro
    from confluent_kafka import Producer

    from schemas.codec import SCHEMA_HEADER, encode_batch, event_batch_fingerprint, writer_schemas
    from settings.kafka_clients import producer_config

    cfg = fleet.cfg
    host = "upgrade-host"
    old_fp = "EventBatch:0dad8f6712675cfe"
    old, unknown, new = genesis(host), reads(host, 7, 2, 1), reads(host, 9, 2, 2)
    want = expected_alerts(cfg, {"rules.yaml": RULES}, [old, new])
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, writer_schemas()[old_fp], old)
    producer = Producer(producer_config(cfg.kafka))
    for value, fp in ((buf.getvalue(), old_fp), (encode_batch(unknown), "EventBatch:ffffffffffffffff"),
                      (encode_batch(new), event_batch_fingerprint())):
        producer.produce(cfg.kafka.topics.events, key=host.encode(), value=value, headers=[(SCHEMA_HEADER, fp.encode())])
    assert producer.flush(30) == 0
    got = hosts_alerts(cfg, {host}, len(want))
    assert_same_alerts(got, want)  # the new sensor's reads still find cat's parents, built from the old record
    dead = read_topic(cfg, cfg.kafka.topics.events_dlq, lambda m: any(x.key() == host.encode() for x in m), timeout=60)
    (record,) = [m for m in dead if m.key() == host.encode()]
    headers = dict(record.headers())
    assert headers["peregrine.reason"] == b"decode"
    assert b"unknown schema EventBatch:ffffffffffffffff" in headers["peregrine.error"]


def test_rules_published_while_running_bad_refused_good_applied(fleet: Fleet, tmp_path: Path) -> None:
    cfg = fleet.cfg
    host = "rules-host"
    produce_batches(cfg, [genesis(host)])
    assert hosts_alerts(cfg, {host}, 1)

    # straight to the topic, as a misbehaving publisher would
    fleet.publish(tmp_path / "extra.yaml", BAD_RULES, "both workers refusing the bad file",
                  "peregrine_worker_rules_loads_total", result="failed")
    # Old rules still alert, on both workers' partitions.
    old = [reads(h, 7, 2, 1) for h in (host, "rules-host-2")] + [genesis("rules-host-2")]
    produce_batches(cfg, [old[2], old[0], old[1]])
    want_old = expected_alerts(cfg, {"rules.yaml": RULES}, [genesis(host), old[2], *old[:2]])
    assert_same_alerts(hosts_alerts(cfg, {host, "rules-host-2"}, len(want_old)), want_old)

    fleet.publish(tmp_path / "extra.yaml", NEW_RULE, "both workers loading the good file",
                  "peregrine_worker_rules_loads_total", result="ok")
    produce_batches(cfg, [reads(host, 20, 2, 3, path="/etc/passwd")])
    mine = len([a for a in want_old.values() if a["hostname"] == host])
    new = [a for a in hosts_alerts(cfg, {host}, mine + 1) if a["rule"] == "Passwd file opened"]
    assert new and new[0]["output_fields"]["proc.pname"] == "bash"  # the state survived the reload
    assert new[0]["priority"] == "Notice"


DNS_RULE = """
- rule: Local service contacted
  desc: fd.sip.name is a name the rules compare with, resolved by the worker
  condition: evt.type = connect and fd.sip.name = localhost
  output: local service (server=%fd.sip.name ip=%fd.sip)
  priority: INFO
"""


def test_a_published_rule_on_fd_sip_name_resolves_its_names_and_alerts(fleet: Fleet, tmp_path: Path) -> None:
    cfg = fleet.cfg
    host = "dns-host"
    fleet.publish(tmp_path / "dns.yaml", DNS_RULE, "both workers resolving localhost", "peregrine_worker_dns_names",
                  state="resolved")
    produce_batches(cfg, [batch(host, 1, [event(T0, "connect", 300, comm="curl", res=0, args={
        "fd": "5", "family": "2", "sip": "127.0.0.1", "sport": "40112", "dip": "127.0.0.1", "dport": "8080",
        "l4proto": "tcp", "fd.name": "127.0.0.1:40112->127.0.0.1:8080"})])])
    (alert,) = hosts_alerts(cfg, {host}, 1)
    assert alert["rule"] == "Local service contacted"
    assert alert["output_fields"]["fd.sip.name"] == "localhost" and "server=localhost" in alert["output"]


def test_metrics_use_falcos_names(fleet: Fleet) -> None:
    shadow = fleet.metric("falcosecurity_falco_rules_matches_total", rule_name="Shadow file opened",
                          priority="Warning", source="syscall")
    assert shadow >= 16 * 4  # the alerts of the tests above (replays may add)
    assert fleet.metric("falcosecurity_falco_num_evts_total") >= 16 * 12
    assert fleet.metric("falcosecurity_falco_n_threads") >= 4
    assert fleet.metric("peregrine_worker_state_entries", table="proctable") >= 4
    assert fleet.metric("falcosecurity_falco_n_drops_full_threadtable") == 0
    assert fleet.metric("process_cpu_seconds_total") > 0  # each worker's own cost
    samples = metrics_samples(fleet.ports["a"])
    lags = [lbl for (name, lbl), _ in samples.items() if name == "peregrine_worker_consumer_lag"]
    assert lags and all(dict(lbl)["topic"] == fleet.cfg.kafka.topics.events for lbl in lags)


def test_kill_9_mid_stream_moves_partitions_recovers_state_and_loses_no_alert(fleet: Fleet) -> None:
    """Worker b dies by SIGKILL while a producer sends; a takes every partition (state from the changelogs); then
    a new worker joins (scale 1 -> 2) while records keep coming: the rebalances faust-streaming #596/#606/#502 are
    about. Our offset guard (processor/offset_guard.py) is what holds the guarantee here."""
    cfg = fleet.cfg
    hosts = [f"kill-{i:02d}" for i in range(12)]
    first = [genesis(h) for h in hosts]
    rounds = 40
    stream = [reads(h, 7 + 4 * k, 4, 1 + k) for k in range(rounds) for h in hosts]
    want = expected_alerts(cfg, {"rules.yaml": RULES, "extra.yaml": NEW_RULE}, first + stream)
    produce_batches(cfg, first)
    assert hosts_alerts(cfg, set(hosts), len(hosts))  # every host's lifecycle is in state (and its changelog)

    def send() -> None:
        for i in range(0, len(stream), len(hosts)):
            produce_batches(cfg, stream[i:i + len(hosts)])
            time.sleep(0.6)

    producer = threading.Thread(target=send)
    producer.start()
    time.sleep(3)
    stop(fleet.workers["b"], signal.SIGKILL)
    every = set(range(cfg.kafka.events_partitions))
    fleet.wait("a alone holding every partition", lambda: list(_members(cfg).values()) == [every], timeout=60)
    fleet.start("c")  # scale back to two while records keep coming
    producer.join()
    assert hosts_alerts(cfg, set(hosts), len(want), timeout=150)
    # Partitions settle (c has some) and every offset commits (no stall: faust-streaming #596/#606).
    fleet.wait("a and c sharing the partitions", lambda: _two_members_assigned(cfg), timeout=60)
    ends = end_offsets(cfg, cfg.kafka.topics.events)
    fleet.wait(f"every events offset committed (ends {ends})", lambda: {
        p: max(o, 0) for p, o in committed_offsets(cfg).items()} == ends, timeout=90,
        state=lambda: f"committed {committed_offsets(cfg)}, members {group_assignment(cfg)}")
    got = hosts_alerts(cfg, set(hosts), len(want), linger=3)  # replays (#502) have landed by now
    assert_same_alerts(got, want)
    assert all(a["output_fields"]["proc.pname"] == "bash" and a["output_fields"]["proc.aname[2]"] == "sshd"
               for a in got)


def _members(cfg: Config) -> dict[str, set[int]]:
    try:
        return group_assignment(cfg)
    except Exception:
        return {}
