"""Output connector v1: `peregrine outputs` prints alerts as Falco does and commits only what it printed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from outputs_helpers import make_alert, produce

from settings.config import Config

REPO = Path(__file__).resolve().parents[2]


def _env(cfg: Config) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PEREGRINE_KAFKA__BOOTSTRAP_SERVERS": cfg.kafka.bootstrap_servers,
                "PEREGRINE_KAFKA__TOPICS__ALERTS": cfg.kafka.topics.alerts,
                "PEREGRINE_CONFIG": str(REPO / "tests" / "outputs" / "empty-peregrine.yaml")})
    return env


def _run_until(cfg: Config, args: list[str], lines: int, timeout: float = 60) -> list[str]:
    proc = subprocess.Popen([sys.executable, "-m", "peregrine_cli.main", "outputs", *args], cwd=REPO,
                            env=_env(cfg), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    got: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    try:
        while len(got) < lines and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            got.append(line.rstrip("\n"))
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return got


def test_text_lines_then_json_lines_resume_after_committed_offset(kafka_config: Config) -> None:
    first = [make_alert(i) for i in range(3)]
    produce(kafka_config, first)
    lines = _run_until(kafka_config, [], 3)
    assert lines == [a["output"] for a in first]
    assert lines[0].startswith("21:00:13.123456789: Warning Sensitive file opened (proc.name=cat")

    # A second run of the same connector continues after what was printed (offsets were committed).
    second = [make_alert(i) for i in range(3, 5)]
    produce(kafka_config, second)
    lines = _run_until(kafka_config, ["--json"], 2)
    assert [json.loads(line) for line in lines] == second
