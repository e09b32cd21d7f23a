"""The start-up snapshot: every live process with its context, and users/groups, as schema-valid meta events."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from schemas.codec import decode_batch, encode_batch
from sensor.snapshot import snapshot_events


def test_snapshot_has_live_processes_with_context() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "marker-arg"], cwd="/tmp")
    try:
        events = snapshot_events()
    finally:
        child.kill()
        child.wait()
    snaps = {e["pid"]: e for e in events if e["type"] == "snapshot"}
    me = snaps[os.getpid()]
    assert me["ppid"] == os.getppid() and me["proc"]["cwd"] == os.getcwd()
    assert me["proc"]["sid"] == os.getsid(0) and me["proc"]["pgid"] == me["proc"]["vpgid"] == os.getpgid(0)
    assert me["uid"] == os.getuid() and me["euid"] == os.geteuid()
    c = snaps[child.pid]
    assert c["proc"]["args"] == ["-c", "import time; time.sleep(30)", "marker-arg"]
    assert c["proc"]["cwd"] == "/tmp" and c["ppid"] == os.getpid()
    assert c["proc"]["exepath"] == os.path.realpath(sys.executable)
    assert c["proc"]["start_ts"] >= me["proc"]["start_ts"]
    assert 1 in snaps and snaps[1]["ppid"] == 0


@pytest.mark.skipif(not shutil.which("unshare") or not shutil.which("setsid"), reason="no unshare(1)/setsid(1)")
def test_snapshot_gives_a_pid_namespaces_own_numbers() -> None:
    outer = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "setsid", "sleep", "30"])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            inner = [e for e in snapshot_events() if e["type"] == "snapshot" and e["ppid"] == outer.pid]
            if inner and inner[0]["comm"] == "sleep":
                break
            time.sleep(0.05)
    finally:
        outer.kill()
        outer.wait()
    (sleeper,) = inner
    assert (sleeper["proc"]["vpid"], sleeper["proc"]["vpgid"], sleeper["proc"]["pgid"]) == (1, 1, sleeper["pid"])


def test_users_and_groups_come_first_and_encode() -> None:
    events = snapshot_events()
    first_snapshot = next(i for i, e in enumerate(events) if e["type"] == "snapshot")
    users = [e for e in events[:first_snapshot] if e["type"] == "user"]
    groups = [e for e in events[:first_snapshot] if e["type"] == "group"]
    assert {"uid": "0", "name": "root", "homedir": "/root", "shell": users[0]["args"]["shell"]} in \
        [u["args"] for u in users]
    assert any(g["args"] == {"gid": "0", "name": "root"} for g in groups)
    batch = {"hostname": "h", "sensor_id": "s", "batch_seq": 0, "first_seq": 0, "events": events}
    assert decode_batch(encode_batch(batch))["events"] == events


@pytest.mark.ebpf
def test_live_capture_repeats_the_snapshot_as_a_keyframe() -> None:
    """sensor.snapshot_interval_s: the start-up snapshot, then a keyframe every interval, marked periodic, with the
    live events still flowing after it."""

    from sensor.agent import LiveSource

    source = LiveSource({"execve"}, snapshot_interval_s=1.0)
    source.start()
    try:
        first = source.poll(0)
        assert any(e["type"] == "snapshot" and e["pid"] == os.getpid() and not e["args"] for e in first)
        deadline = time.monotonic() + 10
        keyframe: list[dict] = []  # type: ignore[type-arg]
        while not keyframe and time.monotonic() < deadline:
            keyframe = [e for e in source.poll(200) if e["type"] == "snapshot"]
        subprocess.run(["/bin/true"], check=True)
        true_execs: list[dict] = []  # type: ignore[type-arg]
        while time.monotonic() < deadline and not true_execs:
            true_execs = [e for e in source.poll(200) if e["type"] == "execve" and e["proc"]
                          and e["proc"]["exepath"].endswith("/true")]
    finally:
        source.close()
    assert keyframe, "no keyframe within 10 s"
    mine = [e for e in keyframe if e["pid"] == os.getpid()]
    assert len(mine) == 1 and mine[0]["args"] == {"periodic": "true"}
    assert true_execs, "live events stop after a keyframe"
