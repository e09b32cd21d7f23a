"""The ring buffer's rare refusal of a record it has room for (seen on 6.18 under load) loses nothing: the record
waits on its CPU and goes out ahead of that CPU's next one. The probe is built with a fault that refuses every
Nth record, since no workload provokes the kernel's refusal on demand."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensor.capture import Capture
from tests.sensor.helpers import started_capture

pytestmark = pytest.mark.ebpf
if os.geteuid() != 0:
    pytest.skip("capture tests need root (eBPF)", allow_module_level=True)

FILES = 2000


@pytest.fixture(scope="module")
def refusing() -> Iterator[Capture]:
    yield from started_capture({"openat", "close"}, fault_refuse_every=50)


def test_refused_records_are_deferred_not_lost(refusing: Capture, tmp_path: Path) -> None:
    while refusing.poll(0):
        pass
    before = refusing.drops()
    code = ("import os, sys\nd = sys.argv[1]\nfor i in range(int(sys.argv[2])):\n"
            "    os.close(os.open(f'{d}/f{i}', os.O_CREAT | os.O_WRONLY, 0o600))\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(FILES)])
    assert child.wait(60) == 0
    opened: list[str] = []
    deadline = time.monotonic() + 10
    while len(opened) < FILES and time.monotonic() < deadline:
        for ev in refusing.poll(100):
            name = ev["args"].get("name", "")
            if ev["pid"] == child.pid and ev["type"] == "openat" and name.startswith(f"{tmp_path}/f"):
                opened.append(name)
    after = refusing.drops()
    assert sorted(opened) == sorted(f"{tmp_path}/f{i}" for i in range(FILES))  # each exactly once
    # the fault refused every 50th record system-wide: thousands of the child's own 4,000+ records among them
    assert after["n_deferred_buffer"] - before["n_deferred_buffer"] >= 4000 // 50
    assert after["n_drops_buffer_refused"] == before["n_drops_buffer_refused"]
    assert after["n_drops_buffer"] == before["n_drops_buffer"]
