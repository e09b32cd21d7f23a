"""Errors a new user can hit are one clear line saying what is wrong and what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def peregrine(*argv: str, env: dict[str, str] | None = None, user: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "peregrine_cli.main", *argv]
    if user:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("peregrine: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_kafka_unreachable_is_one_line() -> None:
    port = free_port()
    proc = peregrine("alerts", "tail", env={"PEREGRINE_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"})
    assert proc.returncode == 1
    line = error_line(proc)
    assert f"Kafka is unreachable at 127.0.0.1:{port}" in line and "peregrine kafka start" in line


def test_java_missing_is_one_line(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    proc = peregrine("kafka", "start", env={"PATH": str(bindir), "PEREGRINE_STATE_DIR": str(tmp_path / "s")})
    assert proc.returncode == 1
    assert "Java is missing" in error_line(proc)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_up_as_non_root_says_run_as_root(tmp_path: Path) -> None:
    proc = peregrine("up", user="65534", env={"PEREGRINE_STATE_DIR": str(tmp_path)})
    assert proc.returncode == 1
    assert "as root" in error_line(proc)


def test_bad_config_names_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "peregrine.yaml"
    conf.write_text("kafka:\n  bootstrap_server: x:1\n")
    proc = peregrine("-c", str(conf), "kafka", "status")
    assert proc.returncode == 1
    line = error_line(proc)
    assert str(conf) in line and "unknown key 'bootstrap_server'" in line
