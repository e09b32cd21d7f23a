"""The sensor loop end to end on the real broker, fed by recordings: order, numbering, metrics, the journal."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sensor.agent import Agent, AgentOptions, ReplaySource, Shipper
from sensor.batcher import Batcher, BatchLimits, SeqStore
from sensor.journal import Journal
from sensor.metrics import SensorMetrics
from sensor.publisher import Publisher
from settings.config import Config
from tests.conftest import REPO_ROOT, free_port
from tests.sensor.test_batcher import make_event
from tests.sensor.test_publisher import read_topic
from tests.sensor.test_recording import record

pytestmark = pytest.mark.kafka


def sensor_config(cfg: Config) -> Config:
    cfg = copy.deepcopy(cfg)
    cfg.sensor.metrics_port = 0
    cfg.sensor.batch_max_events = 1000
    return cfg


def assert_complete_and_ordered(records: list[dict], expected_tids: list[int]) -> None:
    events = [e for r in records for e in r["batch"]["events"]]
    assert [e["tid"] for e in events] == expected_tids
    assert [r["batch"]["batch_seq"] for r in records] == list(range(len(records)))
    next_seq = 0
    for r in records:
        assert r["batch"]["first_seq"] == next_seq
        next_seq += len(r["batch"]["events"])


def replay_to_the_end(agent: Agent) -> str:
    """A started agent fed its whole replay, flushed and acknowledged by Kafka; returns its metrics base URL."""
    while not agent.source.finished:
        agent.step()
    agent._ship(agent.batcher.flush())
    assert agent.shipper is not None
    agent.shipper.stop(30)
    assert agent.server is not None
    return f"http://127.0.0.1:{agent.server.port}"


def test_a_replayed_recording_reaches_kafka_in_order(kafka_config: Config, tmp_path: Path) -> None:
    record(tmp_path / "cap.avro", [make_event(i) for i in range(20_000)])
    cfg = sensor_config(kafka_config)
    agent = Agent(cfg, ReplaySource(tmp_path / "cap.avro"))
    assert agent.run(install_signals=False) == 0

    records = read_topic(cfg, cfg.kafka.topics.events, 20_000)
    assert_complete_and_ordered(records, list(range(20_000)))
    # The record time is its first event's time (a retro-hunt's window is event time, journaled or not).
    assert all(r["timestamp_ms"] == r["batch"]["events"][0]["ts"] // 1_000_000 for r in records)
    assert all(len(r["batch"]["events"]) <= 1000 for r in records)
    assert agent.drops() == {}
    assert not any((cfg.state_path / "sensor" / "journal").glob("*.seg"))


def test_metrics_and_health_endpoints(kafka_config: Config, tmp_path: Path) -> None:
    record(tmp_path / "cap.avro", [make_event(i, type_="openat" if i % 4 else "execve") for i in range(4000)])
    agent = Agent(sensor_config(kafka_config), ReplaySource(tmp_path / "cap.avro"))
    agent.start()
    try:
        base = replay_to_the_end(agent)
        text = httpx.get(base + "/metrics").text
        health = httpx.get(base + "/healthz")
    finally:
        agent.close()
    assert "falcosecurity_scap_n_evts_total 4000.0" in text
    assert 'peregrine_sensor_events_published_total{type="openat"} 3000.0' in text
    assert 'peregrine_sensor_events_published_total{type="execve"} 1000.0' in text
    assert "peregrine_sensor_batch_events_count 4.0" in text
    assert "peregrine_sensor_journal_bytes 0.0" in text
    assert "peregrine_sensor_producer_queue_length" in text
    cpu = re.search(r"^process_cpu_seconds_total ([0-9.e+-]+)$", text, re.M)  # what the sensor itself costs
    assert cpu is not None and float(cpu.group(1)) > 0
    turns = re.search(r"^peregrine_sensor_loop_turn_seconds_count ([0-9.e+-]+)$", text, re.M)
    assert turns is not None and float(turns.group(1)) >= 1  # the loop turns that had records are timed
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_kafka_away_at_start_journals_and_a_restart_replays_first(kafka_config: Config, tmp_path: Path) -> None:
    record(tmp_path / "first.avro", [make_event(i) for i in range(8000)])
    record(tmp_path / "second.avro", [make_event(i) for i in range(8000, 12_000)])
    away = sensor_config(kafka_config)
    away.kafka.bootstrap_servers = f"127.0.0.1:{free_port()}"  # nothing listens here
    first = Agent(away, ReplaySource(tmp_path / "first.avro"), AgentOptions(stop_timeout_s=3, max_inflight_records=4))
    first.run(install_signals=False)
    journal = away.state_path / "sensor" / "journal"
    assert list(journal.glob("*.seg")), "everything captured while Kafka was away is journaled"
    assert first.drops() == {}

    # A small window: the journal drains in several rounds, none of which may send a batch twice.
    second = Agent(sensor_config(kafka_config), ReplaySource(tmp_path / "second.avro"),
                   AgentOptions(max_inflight_records=2))
    second.run(install_signals=False)
    records = read_topic(kafka_config, kafka_config.kafka.topics.events, 12_000)
    assert_complete_and_ordered(records, list(range(12_000)))
    assert not list(journal.glob("*.seg")), "the journal is empty once delivered"


def test_full_journal_drops_and_counts(kafka_config: Config, tmp_path: Path) -> None:
    record(tmp_path / "cap.avro", [make_event(i) for i in range(20_000)])
    away = sensor_config(kafka_config)
    away.kafka.bootstrap_servers = f"127.0.0.1:{free_port()}"
    away.sensor.journal_max_bytes = 300_000
    agent = Agent(away, ReplaySource(tmp_path / "cap.avro"), AgentOptions(stop_timeout_s=1, max_inflight_records=2))
    agent.run(install_signals=False)
    dropped = agent.drops()["n_drops_journal"]
    assert 0 < dropped < 20_000
    assert agent.metrics.n_drops.labels("journal")._value.get() >= dropped


def test_cli_replays_a_recording(kafka_config: Config, tmp_path: Path) -> None:
    record(tmp_path / "cap.avro", [make_event(i) for i in range(3000)])
    env = dict(os.environ, PEREGRINE_KAFKA__BOOTSTRAP_SERVERS=kafka_config.kafka.bootstrap_servers,
               PEREGRINE_KAFKA__TOPICS__EVENTS=kafka_config.kafka.topics.events, PEREGRINE_STATE_DIR=str(tmp_path / "st"),
               PEREGRINE_SENSOR__METRICS_PORT="0", PEREGRINE_HOSTNAME="cli-host")
    proc = subprocess.run([sys.executable, "-m", "peregrine_cli.main", "sensor", "--replay", str(tmp_path / "cap.avro")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    records = read_topic(kafka_config, kafka_config.kafka.topics.events, 3000)
    assert [e["tid"] for r in records for e in r["batch"]["events"]] == list(range(3000))
    assert {r["key"] for r in records} == {b"cli-host"}


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    env = dict(os.environ, PEREGRINE_STATE_DIR=str(tmp_path / "st"))
    proc = subprocess.run([sys.executable, "-m", "peregrine_cli.main", "sensor", "--replay", str(tmp_path / "nope")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"peregrine: error: {tmp_path / 'nope'}: no such capture file"]
    if os.geteuid() == 0:
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                               "-m", "peregrine_cli.main", "sensor", "--no-kafka"],
                              cwd="/tmp", env=dict(env, PYTHONPATH=str(REPO_ROOT)), capture_output=True, text=True,
                              timeout=60)
        assert "run it as root" in proc.stderr and proc.returncode == 1, proc.stderr
        # A capture that cannot start says why in one line (here: a bad ring buffer size).
        proc = subprocess.run([sys.executable, "-m", "peregrine_cli.main", "sensor", "--no-kafka"], cwd=tmp_path,
                              env=dict(env, PEREGRINE_SENSOR__RING_BUFFER_PAGES="1000"), capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 1
        assert proc.stderr.strip().splitlines() == [
            "peregrine: error: ring_buffer_pages=1000: must be a power of two (e.g. 1024)"]


def test_a_stuck_producer_is_replaced_and_nothing_is_lost(kafka_config: Config, tmp_path: Path) -> None:
    metrics = SensorMetrics()
    away = copy.deepcopy(kafka_config.kafka)
    away.bootstrap_servers = f"127.0.0.1:{free_port()}"
    publisher = Publisher(away, "host-s", metrics, max_inflight_records=3)
    journal = Journal(tmp_path / "journal", 1 << 20)
    shipper = Shipper(publisher, journal, metrics)
    batcher = Batcher("host-s", "host-s/boot", BatchLimits(100, 100_000, 100), SeqStore(tmp_path / "seq.json"))
    for batch in batcher.add([make_event(i) for i in range(800)]):
        shipper.submit(batch)
    assert len(publisher.inflight) == 3 and not journal.empty, "3 held by the producer, 5 journaled"

    publisher._conf["bootstrap.servers"] = kafka_config.kafka.bootstrap_servers  # what the new producer will reach
    shipper.restart_producer()
    assert publisher.restarts == 1 and not publisher.inflight
    deadline = time.monotonic() + 60
    while not shipper.idle and time.monotonic() < deadline:
        shipper.pump()
        publisher.poll(0.1)
    records = read_topic(kafka_config, kafka_config.kafka.topics.events, 800)
    assert_complete_and_ordered(records, list(range(800)))


def test_events_traced_only_for_the_sensors_tables_stay_on_the_node(kafka_config: Config, tmp_path: Path) -> None:
    """Rules on openat: close and dup2 are traced (the sensor's fd table names later fds) but no rule reads them,
    so they are counted as state-only and not shipped; lifecycle and meta events always are."""
    from schemas.event_types import ALWAYS_SHIPPED

    cycle = ["openat", "close", "dup2", "clone", "execve", "procexit", "snapshot"]
    record(tmp_path / "cap.avro", [make_event(i, type_=cycle[i % len(cycle)]) for i in range(7000)])
    cfg = sensor_config(kafka_config)
    agent = Agent(cfg, ReplaySource(tmp_path / "cap.avro"), AgentOptions(ship_types=frozenset({"openat"}) | ALWAYS_SHIPPED))
    agent.start()
    try:
        text = httpx.get(replay_to_the_end(agent) + "/metrics").text
    finally:
        agent.close()
    records = read_topic(cfg, cfg.kafka.topics.events, 5000)
    shipped = [e for r in records for e in r["batch"]["events"]]
    assert {e["type"] for e in shipped} == {"openat", "clone", "execve", "procexit", "snapshot"}
    assert len(shipped) == 5000 and [e["tid"] for e in shipped] == [i for i in range(7000) if i % 7 not in (1, 2)]
    assert agent.n_evts == 7000 and agent.n_state_only == 2000 and agent.drops() == {}
    assert 'peregrine_sensor_events_state_only_total{type="close"} 1000.0' in text
    assert 'peregrine_sensor_events_state_only_total{type="dup2"} 1000.0' in text
    assert "falcosecurity_scap_n_evts_total 7000.0" in text  # captured, as Falco counts them


def test_falcos_stable_rules_trace_close_for_the_fd_table_but_do_not_ship_it() -> None:
    from sensor.agent import sensor_event_types, sensor_ship_types

    stable = [str(REPO_ROOT.parent / "shared" / "falco-rules" / "falco_rules.yaml")]
    traced, shipped = sensor_event_types(Config(), stable), sensor_ship_types(Config(), stable)
    assert traced is not None and shipped is not None
    assert {"openat", "close", "dup2", "accept"} <= traced  # the fd table: every way an fd is made or closed
    assert {"openat", "dup2", "execve", "connect", "clone", "procexit", "snapshot"} <= shipped  # rules read dup2
    assert not {"close", "accept", "bind"} & shipped
