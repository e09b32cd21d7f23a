"""The whole pipeline on this host with real eBPF and the real broker: `cat /etc/shadow` becomes an alert.

Needs root (the sensor loads eBPF programs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from settings.config import Config
from tests.conftest import free_port
from tests.pipeline.helpers import REPO, alerts_consumer, read_alerts, spawn, stop, write_config

pytestmark = [pytest.mark.kafka, pytest.mark.ebpf,
              pytest.mark.skipif(os.geteuid() != 0, reason="the sensor needs root to load eBPF")]

RULE = "Credential File Read by Untrusted Program"


def is_shadow_alert(alert: dict) -> bool:  # type: ignore[type-arg]
    f = alert.get("output_fields", {})
    return alert.get("rule") == RULE and f.get("proc.name") == "cat" and f.get("fd.name") == "/etc/shadow"


def test_cat_etc_shadow_alerts_through_sensor_kafka_worker(kafka_config: Config, tmp_path: Path) -> None:
    cfg = kafka_config
    cfg.worker.metrics_port = 0
    cfg.sensor.metrics_port = free_port()
    conf = write_config(cfg, tmp_path / "peregrine.yaml")
    consumer = alerts_consumer(cfg)
    worker = spawn(conf, "worker", log=tmp_path / "worker.log")
    sensor = spawn(conf, "sensor", log=tmp_path / "sensor.log")
    try:
        deadline = time.monotonic() + 120
        found: list[dict] = []  # type: ignore[type-arg]
        while time.monotonic() < deadline and not found:
            assert sensor.poll() is None, (tmp_path / "sensor.log").read_text()[-3000:]
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            acted = time.monotonic()
            subprocess.run(["cat", "/etc/shadow"], stdout=subprocess.DEVNULL, check=True)
            got = read_alerts(consumer, lambda a: any(is_shadow_alert(x) for x in a), timeout=10)
            found = [a for a in got if is_shadow_alert(a)]
        assert found, "no alert for cat /etc/shadow:\n" + (tmp_path / "sensor.log").read_text()[-2000:] + \
            (tmp_path / "worker.log").read_text()[-2000:]
        alert = found[0]
        assert alert["hostname"] == cfg.host
        assert alert["source"] == "syscall"
        assert alert["priority"] in ("Warning", "Error", "Critical")
        assert "fd.name=/etc/shadow" in alert["output"] or "/etc/shadow" in alert["output"]
        assert time.monotonic() - acted < 10  # the bound, measured from the successful action
    finally:
        stop(sensor)
        stop(worker)
        consumer.close()


def test_peregrine_up_prints_alert_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    """README's main command: `peregrine up` with its own broker and the UI; Ctrl-C (SIGINT) stops all it started."""
    cfg = Config(state_dir=str(tmp_path / "state"))
    cfg.kafka.port, cfg.kafka.controller_port = free_port(), free_port()
    cfg.kafka.bootstrap_servers = f"127.0.0.1:{cfg.kafka.port}"
    cfg.worker.metrics_port, cfg.sensor.metrics_port, cfg.ui.port = free_port(), free_port(), free_port()
    conf = write_config(cfg, tmp_path / "peregrine.yaml")
    out = open(tmp_path / "up.out", "wb")  # noqa: SIM115
    up = subprocess.Popen([sys.executable, "-m", "peregrine_cli.main", "-c", str(conf), "up"], cwd=REPO,
                          stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 180
        text = ""
        while time.monotonic() < deadline:
            assert up.poll() is None, (tmp_path / "up.out").read_text()[-3000:]
            subprocess.run(["cat", "/etc/shadow"], stdout=subprocess.DEVNULL, check=True)
            time.sleep(2)
            text = (tmp_path / "up.out").read_text(errors="replace")
            if RULE.split()[0] in text and "/etc/shadow" in text and "Warning" in text:
                break
        assert "/etc/shadow" in text and "cat" in text, text[-3000:]
        assert f"http://127.0.0.1:{cfg.ui.port}/" in text and "access token" in text  # the UI, with its credentials
        pid_file = tmp_path / "state" / "kafka" / "kafka.pid"
        broker_pid = int(pid_file.read_text())
        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0
        assert not pid_file.exists()
        with pytest.raises(ProcessLookupError):
            os.kill(broker_pid, 0)
        leftover = subprocess.run(["pgrep", "-f", str(conf)], capture_output=True, text=True).stdout.split()
        assert leftover == [], f"processes left running: {leftover}"
    finally:
        if up.poll() is None:
            up.kill()
        out.close()
