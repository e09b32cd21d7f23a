"""Falco's thread table, per host: lifecycle events (fork/exec/exit/setuid/chdir/snapshot) update it; every other
event only reads it. Pure functions over a key-value store, so the Faust tables, the retro-hunt and tests share them.

Keys: "<host>|<pid>" in the process table, "<host>|u<uid>" / "<host>|g<gid>" in the user table,
"<host>|<container id>" in the container table. Values are plain JSON-able dicts (the changelog carries them).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from processor.engine.dns_names import DnsNames
from schemas.event_types import LIFECYCLE_TYPES as WIRE_LIFECYCLE

log = logging.getLogger("peregrine.state")

Record = dict[str, Any]
Store = MutableMapping[str, Any]

LIFECYCLE_TYPES = WIRE_LIFECYCLE | {"snapshot", "user", "group", "container"}
EXEC_TYPES = frozenset({"execve", "execveat"})
FORK_TYPES = frozenset({"clone", "clone3", "fork", "vfork"})
MAX_ANCESTORS = 32


class _Cache(dict[str, Any]):
    """Key -> value as the worker sees it (None: absent or deleted); a key's first read loads it from the table.

    `cache[key]` is one C-level lookup once a key was read (a Python method per read cost ~0.3 µs, twice an event)."""

    __slots__ = ("table",)

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        super().__init__()
        self.table = table

    def __missing__(self, key: str) -> Any:
        value = self[key] = self.table.get(key)
        return value


class WriteBackStore(MutableMapping[str, Any]):
    """A plain-dict cache in front of a Faust table: reads hit the table once, writes reach it once per settle.

    A Faust table read costs ~1 µs and every write is a changelog record; a process forked, exec'd and exited
    between two settles writes once, not three times. The worker flushes right before it waits for Kafka's
    acknowledgements and then commits offsets, so the changelog a successor recovers matches the committed offsets
    (a crash replays records against the state they first saw, up to the narrow window between the changelog's
    acknowledgement and the commit). `partition` is the events partition being processed: each changed key is
    written to that changelog partition (Faust's co-partitioning), whenever the flush happens.
    `forget()` when partitions move (the table is then recovered anew)."""

    def __init__(self, table: MutableMapping[str, Any],
                 changelog: Callable[[int, str, Any], None] | None = None) -> None:
        self.table = table
        self.cache = _Cache(table)
        self.fast_get: Callable[[str], Any] = self.cache.__getitem__  # get(key) without a default, in C once cached
        self.dirty: dict[str, int | None] = {}  # key -> events partition that changed it
        self.partition: int | None = None
        # With a changelog sender (a Faust table's, see processor/changelog.py) a flush writes the table's local
        # store and sends the changelog record itself: Faust's own __setitem__ needs the stream's current event to
        # pick the changelog partition, which a flush outside the record no longer has, and sends one by one.
        self._changelog = changelog
        self._data: Any = getattr(table, "data", table)

    def __getitem__(self, key: str) -> Any:
        value = self.cache[key]
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        value = self.cache[key]
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.cache[key] is not None

    def __setitem__(self, key: str, value: Any) -> None:
        self.cache[key] = value  # (None reads as absent, and is flushed as a delete)
        self.dirty[key] = self.partition

    def __delitem__(self, key: str) -> None:
        if self.cache[key] is None:
            raise KeyError(key)
        self.cache[key] = None
        self.dirty[key] = self.partition

    def __iter__(self) -> Any:
        self.flush()
        return iter(self.table)

    def __len__(self) -> int:
        self.flush()
        return len(self.table)

    def flush(self) -> int:
        """Write what changed since the last flush to the table (changelog records); returns how many."""
        n = len(self.dirty)
        send, data = self._changelog, self._data
        cache = self.cache
        for key, partition in self.dirty.items():
            value = cache[key]
            if send is not None and partition is not None:
                if value is None:
                    data.pop(key, None)
                    send(partition, key, None)  # a tombstone, as Faust's own delete
                else:
                    data[key] = value
                    send(partition, key, value)
            elif value is None:
                self.table.pop(key, None)
            else:
                self.table[key] = value
            if value is None:
                # A deleted key leaves the cache with its delete (the table has it no more either): every purged
                # process would otherwise stay behind as a None, for as long as the worker holds the partition.
                del cache[key]
        self.dirty.clear()
        return n

    def forget(self) -> None:
        """Drop the cache (partitions moved): unflushed writes are dropped, like an uncommitted record's."""
        self.cache.clear()
        self.dirty.clear()


def proc_key(host: str, pid: int) -> str:
    return f"{host}|{pid}"


@dataclass
class HostState:
    """A host's view over the three tables; `purge_grace_ns` keeps exited processes visible like Falco's purge."""

    procs: Store
    users: Store
    containers: Store
    max_procs_per_host: int = 262_144
    purge_grace_ns: int = 300 * 10**9
    proc_counts: dict[str, int] = field(default_factory=dict)
    evicted: int = 0
    purged: int = 0
    _exited: deque[tuple[int, str]] = field(default_factory=deque)
    _adopted: bool = False
    dns: DnsNames = field(default_factory=DnsNames)  # fd.sip.name & co.: the worker's resolver fills it
    full_hosts: set[str] = field(default_factory=set)  # hosts whose table filled up (warned once each)
    procs_get: Callable[[str], Record | None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # A process lookup per event (processor/open_fields.c calls it too), and more per exec: a WriteBackStore's
        # C-level read where it has one.
        self.procs_get = getattr(self.procs, "fast_get", None) or self.procs.get

    def forget_counts(self) -> None:
        """After a rebalance the tables hold other hosts (recovered from changelogs): recount before the next write."""
        self._adopted = False

    def _adopt(self) -> None:
        """Per-host counts and the exited-process purge queue, rebuilt from what the table holds (one scan)."""
        counts: dict[str, int] = {}
        exited: list[tuple[int, str]] = []
        for key, rec in list(self.procs.items()):
            host = key.rsplit("|", 1)[0]
            counts[host] = counts.get(host, 0) + 1
            if rec and rec.get("exit_ts"):
                exited.append((int(rec["exit_ts"]), key))
        self.proc_counts = counts
        self._exited = deque(sorted(exited))
        self._adopted = True

    def proc(self, host: str, pid: int) -> Record | None:
        return self.procs_get(f"{host}|{pid}")  # proc_key, inlined: once per event

    def ancestors(self, host: str, proc: Record | None) -> list[Record]:
        """Parent first; stops at pid 0/1's parent, a loop, or an unknown parent."""
        chain: list[Record] = []
        seen: set[int] = set()
        get = self.procs_get
        while proc is not None and len(chain) < MAX_ANCESTORS:
            ppid = proc.get("ppid", 0)
            if not ppid or ppid in seen:
                break
            seen.add(ppid)
            proc = get(f"{host}|{ppid}")
            if proc is not None:
                chain.append(proc)
        return chain

    def user(self, host: str, uid: int) -> Record | None:
        return self.users.get(f"{host}|u{uid}")

    def group(self, host: str, gid: int) -> Record | None:
        return self.users.get(f"{host}|g{gid}")

    def container(self, host: str, cid: str) -> Record | None:
        return self.containers.get(f"{host}|{cid}") if cid else None

    # -- writes (lifecycle events only) ----------------------------------------------------------------------
    def apply(self, host: str, ev: Record) -> None:
        etype = ev["type"]
        if etype not in LIFECYCLE_TYPES:
            return
        if not self._adopted:
            self._adopt()
        if etype in FORK_TYPES:
            self._fork(host, ev)
        elif etype in EXEC_TYPES:
            if ev.get("res", 0) == 0 and ev.get("proc") is not None:
                self._exec(host, ev)
        elif etype == "snapshot":
            if (ev.get("args") or {}).get("periodic"):
                known = self.proc(host, ev["pid"])
                if known is not None and not known.get("exit_ts"):
                    return  # a keyframe fills gaps: the record built from the stream (exec-time argv) stays
            self._put(host, ev["pid"], _record_from_proc(ev, ev["proc"] or {}))
        elif etype == "procexit":
            if ev["tid"] == ev["pid"]:
                self._exit(host, ev)
        elif etype == "user":
            a = ev["args"]
            self.users[f"{host}|u{a.get('uid')}"] = {"name": a.get("name", ""), "homedir": a.get("homedir", ""),
                                                     "shell": a.get("shell", "")}
        elif etype == "group":
            a = ev["args"]
            self.users[f"{host}|g{a.get('gid')}"] = {"name": a.get("name", "")}
        elif etype == "container":
            a = ev["args"]
            if a.get("id"):
                self.containers[f"{host}|{a['id']}"] = dict(a)
        else:
            self._update_creds_or_cwd(host, ev)

    def _put(self, host: str, pid: int, rec: Record) -> None:
        key = proc_key(host, pid)
        if self.procs_get(key) is None:
            count = self.proc_counts.get(host, 0)
            if count >= self.max_procs_per_host:
                self.evicted += 1  # bounded table: counted, visible on /metrics; the new process is not tracked
                if host not in self.full_hosts:  # said once per host, not per process
                    self.full_hosts.add(host)
                    log.warning("%s: thread table full (%d processes): new processes are not tracked and their "
                                "events lack process context; counted in falcosecurity_falco_n_drops_full_threadtable"
                                " (worker.proc_table_max_per_host)", host, count)
                return
            self.proc_counts[host] = count + 1
        self.procs[key] = rec

    def _fork(self, host: str, ev: Record) -> None:
        args = ev.get("args") or {}
        if "CLONE_THREAD" in args.get("flags", ""):
            return
        child_pid = int(args.get("child_pid") or ev.get("res") or 0)
        if child_pid <= 0:
            return
        parent = self.proc(host, ev["pid"])
        rec: Record = dict(parent) if parent else _record_from_proc(ev, {})
        rec.update(pid=child_pid, ppid=ev["pid"], start_ts=ev["ts"], exit_ts=0, vpid=int(args.get("child_vpid") or 0) or child_pid)
        self._put(host, child_pid, rec)

    def _exec(self, host: str, ev: Record) -> None:
        prev = self.proc(host, ev["pid"]) or {}
        rec = _record_from_proc(ev, ev["proc"])
        rec["start_ts"] = prev.get("start_ts") or rec.get("start_ts") or ev["ts"]
        rec["exec_ts"] = ev["ts"]
        if not rec.get("ppid"):
            rec["ppid"] = prev.get("ppid", 0)
        self._put(host, ev["pid"], rec)

    def _exit(self, host: str, ev: Record) -> None:
        """Keep the record for the grace period so late children and batched events still resolve their parent."""
        key = proc_key(host, ev["pid"])
        rec = self.procs_get(key)
        if rec is not None and not rec.get("exit_ts"):
            self.procs[key] = {**rec, "exit_ts": ev["ts"]}
            self._exited.append((ev["ts"], key))
        self.purge(ev["ts"])

    def purge(self, now_ns: int) -> None:
        while self._exited and self._exited[0][0] + self.purge_grace_ns <= now_ns:
            _, key = self._exited.popleft()
            rec = self.procs_get(key)
            if rec is not None and rec.get("exit_ts"):
                self.procs.pop(key, None)
                host = key.rsplit("|", 1)[0]
                self.proc_counts[host] = max(0, self.proc_counts.get(host, 1) - 1)
                self.purged += 1

    def _update_creds_or_cwd(self, host: str, ev: Record) -> None:
        if ev.get("res", 0) != 0:
            return
        rec = self.proc(host, ev["pid"])
        if rec is None:
            return
        rec = dict(rec)
        args = ev.get("args") or {}
        if ev["type"] in ("chdir", "fchdir"):
            if args.get("path"):
                rec["cwd"] = args["path"]
        else:
            rec["uid"], rec["gid"], rec["euid"] = ev.get("uid", rec.get("uid")), ev.get("gid", rec.get("gid")), ev.get("euid")
        self.procs[proc_key(host, ev["pid"])] = rec


def _record_from_proc(ev: Record, proc: Record) -> Record:
    return {
        "pid": ev["pid"], "ppid": ev.get("ppid", 0), "comm": ev.get("comm", ""),
        "exe": proc.get("exe", ""), "exepath": proc.get("exepath", ""), "args": list(proc.get("args") or []),
        "cwd": proc.get("cwd", ""), "tty": proc.get("tty", 0), "sid": proc.get("sid", 0), "pgid": proc.get("pgid", 0),
        "vpgid": proc.get("vpgid", 0), "vpid": proc.get("vpid", 0), "start_ts": proc.get("start_ts", 0) or ev["ts"], "env": list(proc.get("env") or []),
        "container_id": proc.get("container_id", ""), "uid": ev.get("uid", 0), "gid": ev.get("gid", 0),
        "euid": ev.get("euid", 0), "loginuid": ev.get("loginuid", -1),
        "cap_permitted": proc.get("cap_permitted", 0), "cap_effective": proc.get("cap_effective", 0),
        "cap_inheritable": proc.get("cap_inheritable", 0),
        "exe_from_memfd": proc.get("exe_from_memfd", False), "exe_upper_layer": proc.get("exe_upper_layer", False),
        "exe_ino_ctime": proc.get("exe_ino_ctime", 0), "exe_ino_mtime": proc.get("exe_ino_mtime", 0),
    }
