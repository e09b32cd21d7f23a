"""The start-up snapshot: processes alive before the sensor, users and groups, as meta events.

The worker only learns a process's context from its exec; processes older than the sensor never exec again,
so every live process is sent once as a "snapshot" event (Falco's /proc scan at start-up), together with
"user"/"group" events from the passwd and group databases so uid/gid names resolve.
"""

from __future__ import annotations

import grp
import os
import pwd
import time
from typing import Any

from sensor.container_runtime import ContainerMetadata
from sensor.containers import container_from_proc_cgroup

Event = dict[str, Any]
CLK_TCK = os.sysconf("SC_CLK_TCK")
UNSET_LOGINUID = 0xFFFFFFFF


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def _status(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def process_event(pid: int, now_ns: int, boot_epoch_ns: int, containers: dict[str, Event],
                  metadata: ContainerMetadata | None = None, periodic: bool = False) -> Event | None:
    """A "snapshot" event for one /proc entry, or None when it vanished while being read."""
    base = f"/proc/{pid}"
    stat = _read(f"{base}/stat")
    status = _status(_read(f"{base}/status"))
    if not stat or "Uid" not in status:
        return None
    comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
    ppid, pgid, sid, tty = int(rest[1]), int(rest[2]), int(rest[3]), int(rest[4])
    start_ts = boot_epoch_ns + int(rest[19]) * 1_000_000_000 // CLK_TCK
    uids, gids = status["Uid"].split(), status["Gid"].split()
    nspid = status.get("NSpid", str(pid)).split()
    # the group's id in each namespace from ours down to the process's, 0 where the group was made further up: the
    # last non-zero one is its id where it was made (Falco's vpgid)
    nspgid = [n for n in status.get("NSpgid", str(pgid)).split() if n != "0"] or ["0"]
    loginuid_text = _read(f"{base}/loginuid").strip()
    loginuid = int(loginuid_text) if loginuid_text.isdigit() else UNSET_LOGINUID
    argv = _read(f"{base}/cmdline").rstrip("\0").split("\0")
    argv = argv if argv != [""] else []
    exepath = _readlink(f"{base}/exe")
    memfd = exepath.startswith("/memfd:")
    if exepath.endswith(" (deleted)"):
        exepath = exepath[: -len(" (deleted)")]
    ref = container_from_proc_cgroup(_read(f"{base}/cgroup"))
    if ref and ref.id not in containers:  # with the runtime's metadata: most of a node's containers predate us
        args = (metadata or ContainerMetadata()).announce(ref)
        containers[ref.id] = _meta(now_ns, "container", args or {"id": ref.id, "type": ref.type,
                                                                  "full_id": ref.full_id})
    return {
        "ts": now_ns, "type": "snapshot", "tid": pid, "pid": pid, "ppid": ppid, "uid": int(uids[0]),
        "gid": int(gids[0]), "euid": int(uids[1]), "loginuid": -1 if loginuid == UNSET_LOGINUID else loginuid,
        "comm": comm, "res": 0, "args": {"periodic": "true"} if periodic else {},
        "proc": {
            "exe": argv[0] if argv else comm, "exepath": exepath, "args": argv[1:], "args_truncated": False,
            "cwd": _readlink(f"{base}/cwd"), "tty": tty, "sid": sid, "pgid": pgid, "vpid": int(nspid[-1]),
            "vpgid": int(nspgid[-1]),
            "start_ts": start_ts, "env": [], "container_id": ref.id if ref else "",
            "cap_permitted": int(status.get("CapPrm", "0"), 16), "cap_effective": int(status.get("CapEff", "0"), 16),
            "cap_inheritable": int(status.get("CapInh", "0"), 16), "exe_from_memfd": memfd,
            "exe_upper_layer": False, "exe_ino_ctime": 0, "exe_ino_mtime": 0,
        },
    }


def _meta(now_ns: int, kind: str, args: dict[str, str]) -> Event:
    return {"ts": now_ns, "type": kind, "tid": 0, "pid": 0, "ppid": 0, "uid": 0, "gid": 0, "euid": 0,
            "loginuid": -1, "comm": "", "res": 0, "args": args, "proc": None}


def user_events(now_ns: int | None = None) -> list[Event]:
    now_ns = now_ns or time.time_ns()
    users = [_meta(now_ns, "user", {"uid": str(p.pw_uid), "name": p.pw_name, "homedir": p.pw_dir,
                                    "shell": p.pw_shell}) for p in pwd.getpwall()]
    groups = [_meta(now_ns, "group", {"gid": str(g.gr_gid), "name": g.gr_name}) for g in grp.getgrall()]
    return users + groups


def snapshot_events(metadata: ContainerMetadata | None = None, periodic: bool = False) -> list[Event]:
    """user + group events, then container and snapshot events for every live process (parents first).

    `periodic`: a keyframe, repeated every sensor.snapshot_interval_s. A retro-hunt starts reading at the keyframe
    before its window, so processes that never exec'd inside the window still have their context; workers use a
    keyframe's processes only to fill gaps (the exec-time record they built from the stream is the better one)."""
    now_ns = time.time_ns()
    boot_epoch_ns = now_ns - time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    containers: dict[str, Event] = {}
    metadata = metadata or ContainerMetadata()
    procs = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            ev = process_event(int(name), now_ns, boot_epoch_ns, containers, metadata, periodic)
            if ev is not None:
                procs.append(ev)
    procs.sort(key=lambda e: (e["proc"]["start_ts"], e["pid"]))
    return user_events(now_ns) + list(containers.values()) + procs
