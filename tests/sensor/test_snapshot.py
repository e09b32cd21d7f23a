"""The start-up snapshot: every live process with its context, and users/groups, as schema-valid meta events."""

from __future__ import annotations

import os
import subprocess
import sys

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
    assert me["proc"]["sid"] == os.getsid(0) and me["proc"]["pgid"] == os.getpgid(0)
    assert me["uid"] == os.getuid() and me["euid"] == os.geteuid()
    c = snaps[child.pid]
    assert c["proc"]["args"] == ["-c", "import time; time.sleep(30)", "marker-arg"]
    assert c["proc"]["cwd"] == "/tmp" and c["ppid"] == os.getpid()
    assert c["proc"]["exepath"] == os.path.realpath(sys.executable)
    assert c["proc"]["start_ts"] >= me["proc"]["start_ts"]
    assert 1 in snaps and snaps[1]["ppid"] == 0


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
