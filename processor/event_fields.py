"""Falco's syscall fields (proc.*, fd.*, evt.*, user.*, group.*, container.*, thread.*) for one event, computed
lazily from the wire event and the host's thread table, each at most once per event.

This object is what the engine's compiled filters and output formatter read through `.get(key, default)`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from processor import flags
from processor.engine.dns_names import DNS_NAME_FIELDS
from processor.engine.formatter import format_time
from processor.state import MAX_ANCESTORS, HostState, Record

Extractor = Callable[["EventFields"], Any]
_MISSING = object()

try:  # processor/open_fields.c: the seeding of open events below, in C (None where no compiler built it)
    from processor._open_fields import seed as c_seed_open  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - exercised by images without a compiler
    c_seed_open = None

FD_CALLS_WITH_SOCKET = frozenset({"connect", "accept", "accept4", "bind", "listen", "sendto", "sendmsg", "recvfrom",
                                  "recvmsg", "socket", "getsockopt", "setsockopt", "shutdown"})


class EventFields(dict[str, Any]):
    """One event's field source. `seq` is the event's sequence number within its host (evt.num).

    A dict of the fields computed so far: `get` IS `dict.__getitem__`, so a field read a second time (by the next
    rule) costs one C-level lookup, and only a first read runs Python (`__missing__` computes and stores it). A
    missing field is None (Falco's `<NA>`), never an exception. `get` takes no default, like the engine uses it.
    """

    __slots__ = ("ev", "host", "state", "seq", "_proc", "_ancestors")

    def __init__(self, ev: Record, host: str, state: HostState, seq: int = 0) -> None:
        # evt.type is read first by every event (the ruleset's index): seed it instead of computing it. Opens are
        # most events, and Falco's rules read the same nine fd/evt fields of each: computed together, in one call.
        # Rules on opens, execs and sockets read the process's name and container of nearly every event, execs
        # its other own fields too: seeded with them from the process record here, each without its own dispatch.
        etype = ev["type"]
        self.ev = ev
        self.host = host
        self.state = state
        self.seq = seq
        self._ancestors: list[Record] | None = None
        self._proc: Any
        # (written straight into this dict: no intermediate dicts to build, copy and free)
        if etype in flags.OPEN_TYPES:  # (every open type is seeded with name_and_container)
            if c_seed_open is not None:
                p = c_seed_open(self, ev, etype, _open_flags_seen, state.procs_get, host)
                if p is not False:
                    self._proc = p
                    return
            # anything but the wire's shapes, or a flags combination new to the C path (known to it from now on)
            open_fields(ev, etype, self)
            if "pid" not in ev:
                self._proc = _MISSING
                return
            p = self._proc = state.proc(host, ev["pid"])
            if p:
                try:
                    name_and_container(p, self)
                except Exception:  # noqa: BLE001 - a malformed record: its fields fail (or not) when read
                    pass
            return
        self["evt.type"] = etype
        if etype in FD_CALLS_WITH_SOCKET:
            try:
                socket_fields(ev, self)
            except Exception:  # noqa: BLE001 - malformed arguments: each field fails (or not) when read
                pass
        seeded = _SEEDED.get(etype)
        if seeded is None or "pid" not in ev:
            self._proc = _MISSING
            return
        p = self._proc = state.proc(host, ev["pid"])
        if p:
            try:
                seeded(p, self)
                if seeded is process_fields:  # execs: rules read the parent's and grandparents' names too
                    ancestry_fields(self.ancestors, self)
            except Exception:  # noqa: BLE001 - a malformed record: its fields fail (or not) when read, one by one
                pass

    # -- mapping protocol used by the engine ----------------------------------------------------------------
    get = dict.__getitem__  # type: ignore[assignment]

    def __missing__(self, key: str) -> Any:
        fn = EXTRACTORS.get(key)
        value = self[key] = fn(self) if fn is not None else self._extract(key)
        return value

    def value(self, key: str, default: Any = None) -> Any:
        """`get` with a default for a field that is missing (None)."""
        value = self[key]
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self[key] is not None

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"EventFields({self.host}, seq={self.seq}, {self.ev.get('type')}, computed={dict.__repr__(self)})"

    def _extract(self, key: str) -> Any:
        """A field with no extractor of its own (`__missing__` looked): an argument field, or None."""
        if key.endswith("]") and "[" in key:
            name, _, arg = key[:-1].partition("[")
            afn = ARG_EXTRACTORS.get(name)
            return afn(self, arg) if afn is not None else None
        if key.startswith("evt.arg.") or key.startswith("evt.rawarg."):
            raw = key.startswith("evt.rawarg.")
            return evt_arg(self, key.split(".", 2)[2], raw)
        if key.startswith("evt.type.is."):
            return _type_is(self, key[len("evt.type.is."):])
        return None

    # -- state lookups -------------------------------------------------------------------------------------
    @property
    def proc(self) -> Record | None:
        if self._proc is _MISSING:
            self._proc = self.state.proc(self.host, self.ev["pid"])
        return self._proc  # type: ignore[no-any-return]

    @property
    def ancestors(self) -> list[Record]:
        if self._ancestors is None:
            self._ancestors = self.state.ancestors(self.host, self.proc)
        return self._ancestors

    def ancestor(self, n: int) -> Record | None:
        if n == 0:
            return self.proc
        anc = self.ancestors
        return anc[n - 1] if 0 < n <= len(anc) else None

    @property
    def parent(self) -> Record | None:
        return self.ancestor(1)


# -- process fields --------------------------------------------------------------------------------------------
def _name(p: Record | None) -> str | None:
    if p is None:
        return None
    exe = p.get("exepath") or p.get("exe") or ""
    return exe.rpartition("/")[2] if exe else (p.get("comm") or None)


def _proc_name(f: EventFields) -> str | None:
    p = f.proc
    if p is None:
        return f.ev.get("comm") or None
    return _name(p)


def _cmdline(p: Record | None) -> str | None:
    if p is None:
        return None
    args = p.get("args") or []  # argv[1:], as Falco's proc.args
    name = _name(p) or ""
    return " ".join([name, *args]) if args else name


def _exepath(p: Record | None) -> str | None:
    return (p.get("exepath") or None) if p else None


def _exe(p: Record | None) -> str | None:
    if p is None:
        return None
    return p.get("exe") or None  # argv[0]


def _args(p: Record | None) -> str | None:
    if p is None:
        return None
    return " ".join(p.get("args") or [])


def _pid(p: Record | None) -> int | None:
    return p.get("pid") if p else None


def _tty(f: EventFields) -> int | None:
    p = f.proc
    return int(p.get("tty", 0)) if p else None


def _proc_int(key: str) -> Extractor:
    def get(f: EventFields) -> Any:
        p = f.proc
        return p.get(key) if p else None
    return get


def _sname(f: EventFields) -> str | None:
    """Session leader's name: walk ancestors for the process whose pid is the session id."""
    p = f.proc
    if p is None:
        return None
    sid = p.get("sid")
    if not sid:
        return None
    if p.get("pid") == sid:
        return _name(p)
    for a in f.ancestors:
        if a.get("pid") == sid:
            return _name(a)
    return None


# Event families for the counting and I/O fields (Falco's event categories, for the types the sensor sends).
NET_TYPES = FD_CALLS_WITH_SOCKET | {"socket", "socketpair", "shutdown"}
MEMORY_TYPES = frozenset({"memfd_create", "userfaultfd", "mmap", "munmap", "mprotect", "brk"})
FILE_TYPES = flags.OPEN_TYPES | {"close", "dup", "dup2", "dup3", "chmod", "fchmod", "fchmodat", "mkdir", "mkdirat",
                                 "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2", "link", "linkat",
                                 "symlink", "symlinkat", "chdir", "fchdir", "mount", "umount2"}
IO_READ_TYPES = frozenset({"recvfrom", "recvmsg", "read", "readv", "pread"})
IO_WRITE_TYPES = frozenset({"sendto", "sendmsg", "write", "writev", "pwrite"})
SERVER_TYPES = frozenset({"accept", "accept4", "bind", "listen"})
CLIENT_TYPES = frozenset({"connect", "sendto", "sendmsg", "recvfrom", "recvmsg"})


def _type_is(f: EventFields, etype: str) -> int:
    return int(f.ev["type"] == etype)


def _count_error(family: frozenset[str] | None) -> Extractor:
    """evt.count.error.<family>: 1 for a failed event of that family (None: of none of them)."""
    def get(f: EventFields) -> int:
        etype = f.ev["type"]
        if int(f.ev.get("res", 0)) >= 0:
            return 0
        if family is None:
            return int(etype not in FILE_TYPES and etype not in NET_TYPES and etype not in MEMORY_TYPES)
        return int(etype in family)
    return get


def _io_dir(f: EventFields) -> str | None:
    etype = f.ev["type"]
    return "r" if etype in IO_READ_TYPES else "w" if etype in IO_WRITE_TYPES else None


def _is_server(f: EventFields) -> bool | None:
    etype = f.ev["type"]
    return True if etype in SERVER_TYPES else False if etype in CLIENT_TYPES else None


def _session_leader(f: EventFields) -> Record | None:
    p = f.proc
    sid = p.get("sid") if p else None
    if not sid or p is None:
        return None
    return p if p.get("pid") == sid else next((a for a in f.ancestors if a.get("pid") == sid), None)


def _group_leader(f: EventFields) -> Record | None:
    """The process group's leader: the process whose (host) pid is the group id."""
    p = f.proc
    pgid = p.get("pgid") if p else None
    return f.state.proc(f.host, int(pgid)) if pgid else None


SHELLS = frozenset({"ash", "bash", "csh", "ksh", "sh", "tcsh", "zsh", "dash"})  # libsinsp's login-shell names


def _login_shell_id(f: EventFields) -> int | None:
    """The pid of the oldest shell among the process and its ancestors."""
    found = None
    for rec in [f.proc, *f.ancestors] if f.proc else []:
        if rec is not None and _name(rec) in SHELLS:
            found = rec.get("pid")
    return found


def _since(start_ns: Any, f: EventFields) -> int | None:
    return max(0, int(f.ev["ts"]) - int(start_ns)) if start_ns else None


def _duration(f: EventFields) -> int | None:
    p = f.proc
    if p is None or not p.get("start_ts"):
        return None
    return max(0, int(f.ev["ts"]) - int(p["start_ts"]))


def _env(p: Record | None) -> str | None:
    return " ".join(p.get("env") or []) if p else None


def _env_var(f: EventFields, name: str) -> str | None:
    p = f.proc
    if p is None:
        return None
    prefix = name + "="
    for item in p.get("env") or []:
        if item.startswith(prefix):
            return str(item[len(prefix):])
    return None


def _dns_names(address_field: str) -> Extractor:
    """fd.sip.name & co.: the rule names resolved to the event's address (DnsNames, filled by the worker)."""
    def get(f: EventFields) -> Any:
        dns = getattr(f.state, "dns", None)
        return dns.names_of(f[address_field]) if dns is not None else None
    return get


def _vpgid(p: Record | None) -> int | None:
    """The group id in the process's pid namespace. Records from sensors that predate `vpgid` carry 0: the host
    pgid is the answer only for a process in the host namespace (vpid == pid)."""
    if p is None:
        return None
    if p.get("vpgid"):
        return int(p["vpgid"])
    return int(p.get("pgid") or 0) if p.get("vpid") in (None, 0, p.get("pid")) else 0


def _vpgid_leader(f: EventFields) -> bool | None:
    p = f.proc
    if p is None or not p.get("pgid"):
        return None
    if p.get("vpgid"):
        return bool(p.get("vpid") == p["vpgid"])
    return bool(p.get("vpid") == p.get("pgid") or p.get("pid") == p.get("pgid"))


def _vtid(f: EventFields) -> int | None:
    """Threads other than the leader are not in the table: their id in the namespace is known only on the host."""
    ev, p = f.ev, f.proc
    vpid = (p or {}).get("vpid") or ev["pid"]
    if ev["tid"] == ev["pid"]:
        return int(vpid)
    return int(ev["tid"]) if vpid == ev["pid"] else None


def _ancestor_values(getter: Callable[[Record | None], Any]) -> Callable[[EventFields], Any]:
    def any_ancestor(f: EventFields) -> list[Any] | None:
        values = [v for v in (getter(a) for a in f.ancestors) if v is not None]
        return values or None
    return any_ancestor


def _ancestor_at(getter: Callable[[Record | None], Any]) -> Callable[[EventFields, str], Any]:
    def at(f: EventFields, arg: str) -> Any:
        try:
            n = int(arg)
        except ValueError:
            return None
        return getter(f.ancestor(n))
    return at


# -- user / group ----------------------------------------------------------------------------------------------
def _uid(f: EventFields) -> int:
    return int(f.ev.get("uid", 0))


def _user_name(f: EventFields) -> str | None:
    uid = _uid(f)
    u = f.state.user(f.host, uid)
    if u is not None:
        return str(u.get("name") or "") or None
    return "root" if uid == 0 else None


def _loginuid(f: EventFields) -> int:
    v = int(f.ev.get("loginuid", -1))
    return -1 if v in (4294967295, -1) else v


def _loginname(f: EventFields) -> str | None:
    luid = _loginuid(f)
    if luid < 0:
        return None
    u = f.state.user(f.host, luid)
    return (str(u.get("name") or "") or None) if u else ("root" if luid == 0 else None)


def _user_attr(key: str) -> Extractor:
    def get(f: EventFields) -> Any:
        u = f.state.user(f.host, _uid(f))
        return u.get(key) if u else None
    return get


def _group_name(f: EventFields) -> str | None:
    g = f.state.group(f.host, int(f.ev.get("gid", 0)))
    if g is not None:
        return str(g.get("name") or "") or None
    return "root" if int(f.ev.get("gid", 0)) == 0 else None


# -- container ---------------------------------------------------------------------------------------------------
def _container_id(f: EventFields) -> str:
    p = f.proc
    cid = (p.get("container_id") if p else "") or ""
    return cid or "host"


def _container(f: EventFields) -> Record | None:
    cid = _container_id(f)
    return None if cid == "host" else f.state.container(f.host, cid)


def _container_attr(key: str, host_value: Any = None, default: Any = None) -> Extractor:
    def get(f: EventFields) -> Any:
        if _container_id(f) == "host":
            return host_value
        c = _container(f)
        value = c.get(key) if c else None
        return value if value not in (None, "") else default
    return get


def _container_flag(key: str) -> Extractor:
    """container.host_network & co.: "true"/"false" from the runtime's state, <NA> when unknown or on the host."""
    def get(f: EventFields) -> bool | None:
        c = _container(f) if _container_id(f) != "host" else None
        value = c.get(key) if c else None
        return None if value in (None, "") else str(value).lower() == "true"
    return get


def _container_labels(f: EventFields, key: str = "labels") -> dict[str, str] | None:
    """The container's (`labels`) or its pod's (`pod_labels`) labels: JSON in the container meta event."""
    c = _container(f) if _container_id(f) != "host" else None
    text = c.get(key) if c else None
    if not text:
        return None
    try:
        labels = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return labels if isinstance(labels, dict) else None


def _container_privileged(f: EventFields) -> bool | None:
    if _container_id(f) == "host":
        return False
    c = _container(f)
    if c is None or c.get("privileged") in (None, ""):
        return None
    return str(c.get("privileged")).lower() == "true"


def _container_mounts(f: EventFields) -> list[str] | None:
    c = _container(f)
    if c is None or not c.get("mounts"):
        return None
    return [m for m in str(c["mounts"]).split(",") if m]


def _mount_dest(f: EventFields, arg: str) -> str | None:
    """container.mount.dest[<source glob>]: destination of the mount whose source matches; mounts are `src:dest`."""
    import fnmatch

    if _container_id(f) == "host":
        return None
    for m in _container_mounts(f) or []:
        src, _, dest = m.partition(":")
        if fnmatch.fnmatchcase(src, arg):
            return dest
    return "N/A"  # Falco's container plugin: a container without such a mount


# -- fd fields -------------------------------------------------------------------------------------------------
def _args_of(f: EventFields) -> dict[str, str]:
    return f.ev.get("args") or {}


def _fd_name(f: EventFields) -> str | None:
    a = _args_of(f)
    etype = f.ev["type"]
    if etype in flags.OPEN_TYPES:
        return a.get("name") or None
    name = a.get("fd.name")
    if name:
        return name
    if a.get("path") and etype in FD_CALLS_WITH_SOCKET:
        return a["path"]
    return None


def _fd_family(f: EventFields) -> int | None:
    fam = _args_of(f).get("family")
    try:
        return int(fam) if fam else None
    except ValueError:
        return None


def _fd_type(f: EventFields) -> str | None:
    etype = f.ev["type"]
    if etype in flags.OPEN_TYPES:
        raw = _args_of(f).get("flags", "0")
        return "directory" if "O_DIRECTORY" in flags.open_flags_text(raw) else "file"
    fam = _fd_family(f)
    if fam == 2:
        return "ipv4"
    if fam == 10:
        return "ipv6"
    if fam == 1:
        return "unix"
    if fam is not None:
        return "netlink" if fam == 16 else "socket"
    if _args_of(f).get("fd.type"):
        return _args_of(f)["fd.type"]
    return None


_TYPECHAR = {"file": "f", "directory": "d", "ipv4": "4", "ipv6": "6", "unix": "u", "netlink": "s", "socket": "s",
             "pipe": "p", "event": "e", "signalfd": "s", "eventpoll": "l", "inotify": "i", "timerfd": "t", "memfd": "m"}


def _fd_typechar(f: EventFields) -> str | None:
    t = _fd_type(f)
    return _TYPECHAR.get(t, "o") if t else None


def _fd_num(f: EventFields) -> int | None:
    a = _args_of(f)
    if f.ev["type"] in flags.OPEN_TYPES or f.ev["type"] in ("socket", "accept", "accept4"):
        res = int(f.ev.get("res", -1))
        return res if res >= 0 else None
    fd = a.get("fd")
    try:
        return int(fd) if fd not in (None, "") else None
    except ValueError:
        return None


def _is_file_like(f: EventFields) -> bool:
    return _fd_type(f) in ("file", "directory")


def _fd_directory(f: EventFields) -> str | None:
    name = _fd_name(f)
    if not name or not _is_file_like(f):
        return None
    return name if _fd_type(f) == "directory" else (name.rpartition("/")[0] or "/")


def _fd_filename(f: EventFields) -> str | None:
    name = _fd_name(f)
    if not name or not _is_file_like(f):
        return None
    return name.rpartition("/")[2]


def _net(key: str) -> Extractor:
    def get(f: EventFields) -> Any:
        if _fd_family(f) not in (2, 10):
            return None
        value = _args_of(f).get(key)
        if value in (None, ""):
            return None
        return int(value) if key in ("sport", "dport") else value
    return get


def _lport(f: EventFields) -> int | None:
    # Falco: local = client side for connect/send, server side for accept/bind/listen.
    a = _args_of(f)
    key = "dport" if f.ev["type"] in ("accept", "accept4", "bind", "listen", "recvfrom", "recvmsg") else "sport"
    return int(a[key]) if _fd_family(f) in (2, 10) and a.get(key) else None


def _rport(f: EventFields) -> int | None:
    a = _args_of(f)
    key = "sport" if f.ev["type"] in ("accept", "accept4", "bind", "listen", "recvfrom", "recvmsg") else "dport"
    return int(a[key]) if _fd_family(f) in (2, 10) and a.get(key) else None


def _lip(f: EventFields) -> str | None:
    a = _args_of(f)
    key = "dip" if f.ev["type"] in ("accept", "accept4", "bind", "listen", "recvfrom", "recvmsg") else "sip"
    return a.get(key) or None if _fd_family(f) in (2, 10) else None


def _rip(f: EventFields) -> str | None:
    a = _args_of(f)
    key = "sip" if f.ev["type"] in ("accept", "accept4", "bind", "listen", "recvfrom", "recvmsg") else "dip"
    return a.get(key) or None if _fd_family(f) in (2, 10) else None


def _ip_any(f: EventFields) -> list[str] | None:
    values = [v for v in (_net("sip")(f), _net("dip")(f)) if v]
    return values or None


def _port_any(f: EventFields) -> list[int] | None:
    values = [v for v in (_net("sport")(f), _net("dport")(f)) if v is not None]
    return values or None


def _l4proto(f: EventFields) -> str | None:
    fam = _fd_family(f)
    if fam not in (2, 10):
        return None
    return _args_of(f).get("l4proto") or None


def _connected(f: EventFields) -> bool | None:
    if _fd_family(f) is None:
        return None
    return f.ev["type"] in ("connect", "accept", "accept4", "sendto", "sendmsg", "recvfrom", "recvmsg") and int(
        f.ev.get("res", -1)) >= 0 or f.ev["type"] == "connect" and int(f.ev.get("res", 0)) == -115


# -- evt fields ----------------------------------------------------------------------------------------------
_ARG_RENDER: dict[str, Callable[[str], str]] = {
    "flags": flags.open_flags_text,
    "domain": flags.socket_family_text,
    "family": flags.socket_family_text,
    "request": flags.ptrace_request_text,
}


def evt_arg(f: EventFields, name: str, raw: bool = False) -> Any:
    a = _args_of(f)
    if name in ("res", "fd") and name not in a:
        if name == "res" or f.ev["type"] in flags.OPEN_TYPES:
            return int(f.ev.get("res", 0)) if raw else flags.res_text(int(f.ev.get("res", 0)))
    value = a.get(name)
    if value is None:
        return None
    if raw:
        try:
            return int(value, 0)
        except ValueError:
            return value
    if name == "flags" and f.ev["type"] not in flags.OPEN_TYPES:
        return value
    if name == "uid" and f.ev["type"].startswith("setuid"):
        try:
            u = f.state.user(f.host, int(value))
        except ValueError:
            u = None
        return str(u.get("name")) if u and u.get("name") else ("root" if value == "0" else value)
    render = _ARG_RENDER.get(name)
    return render(value) if render else value


def _evt_arg_index(f: EventFields, arg: str) -> Any:
    try:
        idx = int(arg)
    except ValueError:
        return evt_arg(f, arg)
    keys = list(_args_of(f))
    return evt_arg(f, keys[idx]) if 0 <= idx < len(keys) else None


def _evt_args(f: EventFields) -> str:
    parts = [f"res={flags.res_text(int(f.ev.get('res', 0)))}"]
    parts += [f"{k}={evt_arg(f, k)}" for k in _args_of(f) if "." not in k]
    return " ".join(parts)


def _open_flags_fields(etype: str, raw: Any) -> tuple[dict[str, Any], bool]:
    """The fields of an open that follow from its type and flags alone, and whether it opens a directory."""
    text = flags.open_flags_text(raw if raw is not None else "0")
    is_dir = "O_DIRECTORY" in text
    access = flags.open_access(raw)
    return {
        "evt.type": etype, "fd.type": "directory" if is_dir else "file", "fd.typechar": "d" if is_dir else "f",
        "evt.is_open_read": etype != "creat" and access in (0, 2), "evt.is_open_write": etype == "creat" or access in (1, 2),
        "evt.arg.flags": text if raw is not None else None,
    }, is_dir


_OPEN_FLAGS_SEEN_MAX = 4096
_open_flags_seen: dict[tuple[str, Any], tuple[dict[str, Any], bool]] = {}


def open_fields(ev: Record, etype: str, out: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fd.* / evt.* fields of an open, at once (each equals what its own extractor gives: tested), in `out` or
    a new dict. A node opens with a handful of flag combinations: what follows from them is computed once per
    (type, flags)."""
    a = ev.get("args") or {}
    raw = a.get("flags")
    seen = (etype, raw)
    try:
        known = _open_flags_seen.get(seen)
    except TypeError:  # unhashable flags (not from the wire): computed every time
        known = seen = None  # type: ignore[assignment]
    if known is None:
        known = _open_flags_fields(etype, raw)
        if seen is not None and len(_open_flags_seen) < _OPEN_FLAGS_SEEN_MAX:
            _open_flags_seen[seen] = known
    base, is_dir = known
    if out is None:
        out = base.copy()
    else:
        out.update(base)
    name = a.get("name") or None
    res = int(ev.get("res", 0))
    out["fd.name"] = name
    out["fd.nameraw"] = a.get("nameraw") or name
    out["fd.num"] = res if res >= 0 else None
    if name:
        out["fd.directory"] = name if is_dir else (name.rpartition("/")[0] or "/")
        out["fd.filename"] = name.rpartition("/")[2]
    else:
        out["fd.directory"] = out["fd.filename"] = None
    return out


def socket_fields(ev: Record, out: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fd.* fields of a socket event on an IPv4/IPv6 socket that Falco's network rules read, at once (each
    equals what its own extractor gives: tested), in `out` or a new dict; nothing for other families."""
    out = {} if out is None else out
    a = ev.get("args") or {}
    fam = a.get("family")
    if not fam or int(fam) not in (2, 10):  # raises where _fd_family would (the caller then seeds nothing)
        return out
    fam = int(fam)
    get = a.get
    sip, dip, sport, dport = get("sip"), get("dip"), get("sport"), get("dport")
    sip = None if sip is None or sip == "" else sip
    dip = None if dip is None or dip == "" else dip
    sport = None if sport is None or sport == "" else int(sport)
    dport = None if dport is None or dport == "" else int(dport)
    if sip:  # as _ip_any and _port_any: the ends there are, or None (one list per field)
        ips: list[Any] | None = [sip, dip] if dip else [sip]
    else:
        ips = [dip] if dip else None
    if sport is not None:
        ports: list[int] | None = [sport, dport] if dport is not None else [sport]
    else:
        ports = [dport] if dport is not None else None
    kind = "ipv4" if fam == 2 else "ipv6"
    out.update({
        "fd.type": kind, "fd.typechar": _TYPECHAR[kind], "fd.sockfamily": "ip", "fd.l4proto": get("l4proto") or None,
        "fd.sip": dip, "fd.cip": sip, "fd.sport": dport, "fd.cport": sport, "fd.snet": dip, "fd.cnet": sip,
        "fd.ip": ips, "fd.net": None if ips is None else list(ips), "fd.port": ports,
    })
    return out


def _is_open(mode: int) -> Extractor:
    def get(f: EventFields) -> bool:
        if f.ev["type"] not in flags.OPEN_TYPES:
            return False
        access = flags.open_access(_args_of(f).get("flags"))
        return access in (mode, 2) if mode != 2 else access == 2
    return get


def _is_open_write(f: EventFields) -> bool:
    if f.ev["type"] not in flags.OPEN_TYPES:
        return False
    if f.ev["type"] == "creat":
        return True
    return flags.open_access(_args_of(f).get("flags")) in (1, 2)


def _is_open_read(f: EventFields) -> bool:
    if f.ev["type"] not in flags.OPEN_TYPES or f.ev["type"] == "creat":
        return False
    return flags.open_access(_args_of(f).get("flags")) in (0, 2)


def _time_iso(ns: int) -> str:
    return datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns % 10**9:09d}+0000"


def _evt_time(f: EventFields) -> str:
    ns = int(f.ev["ts"])
    return time.strftime("%H:%M:%S", time.localtime(ns // 10**9)) + f".{ns % 10**9:09d}"


def _caps(key: str) -> Extractor:
    def get(f: EventFields) -> str | None:
        p = f.proc
        if p is None:
            return None
        return caps_text(int(p.get(key) or 0))
    return get


_CAP_NAMES = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
              "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
              "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
              "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
              "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
              "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
              "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
              "CAP_CHECKPOINT_RESTORE"]


def caps_text(mask: int) -> str:
    return " ".join(name for bit, name in enumerate(_CAP_NAMES) if mask >> bit & 1)


def _k8s_label(key: str) -> Extractor:
    def get(f: EventFields) -> Any:
        c = _container(f)
        return (c.get(key) or None) if c else None
    return get


# -- a process's own fields, for seeding ----------------------------------------------------------------------
def process_fields(p: Record, out: dict[str, Any] | None = None) -> dict[str, Any]:
    """A (non-empty) record's own proc.* fields and container.id, as their own extractors compute them (tested),
    in `out` or a new dict."""
    out = {} if out is None else out
    get = p.get
    path = get("exepath") or get("exe") or ""
    out["proc.name"] = name = path.rpartition("/")[2] if path else (get("comm") or None)
    out["container.id"] = get("container_id") or "host"
    out["proc.exe"] = get("exe") or None
    out["proc.exepath"] = get("exepath") or None
    args = get("args") or []
    out["proc.cmdline"] = " ".join([name or "", *args]) if args else (name or "")
    out["proc.args"] = " ".join(args)
    out["proc.cwd"] = get("cwd") or None
    out["proc.env"] = " ".join(get("env") or [])
    out["proc.is_exe_from_memfd"] = bool(get("exe_from_memfd"))
    out["proc.is_exe_upper_layer"] = bool(get("exe_upper_layer"))
    return out


def name_and_container(p: Record, out: dict[str, Any] | None = None) -> dict[str, Any]:
    """proc.name and container.id of a (non-empty) record, the two process fields rules read on every open, in
    `out` or a new dict."""
    out = {} if out is None else out
    get = p.get
    path = get("exepath") or get("exe") or ""
    out["proc.name"] = path.rpartition("/")[2] if path else (get("comm") or None)
    out["container.id"] = get("container_id") or "host"
    return out


def ancestry_fields(ancestors: list[Record], out: dict[str, Any] | None = None) -> dict[str, Any]:
    """proc.pname, proc.aname[1..N] and proc.aname of a process with these ancestors (parent first), as their own
    extractors compute them (tested), in `out` or a new dict."""
    out = {} if out is None else out
    names = [_name(a) for a in ancestors]
    for n, name in enumerate(names, 1):
        out[_ANAME_KEYS[n]] = name
    out["proc.pname"] = names[0] if names else None
    out["proc.aname"] = [name for name in names if name is not None] or None
    return out


_ANAME_KEYS = [f"proc.aname[{n}]" for n in range(MAX_ANCESTORS + 1)]


# event type -> the process fields its events are seeded with
_SEEDED: dict[str, Callable[[Record, dict[str, Any]], dict[str, Any]]] = {
    **{t: name_and_container for t in flags.OPEN_TYPES | FD_CALLS_WITH_SOCKET},
    "execve": process_fields, "execveat": process_fields,
}


_full_id = _container_attr("full_id", "host")
_container_start = _container_attr("start_ts")
_sandbox_id = _k8s_label("k8s_sandbox_id")

EXTRACTORS: dict[str, Extractor] = {
    # evt
    "evt.type": lambda f: f.ev["type"],
    "syscall.type": lambda f: f.ev["type"],
    "evt.num": lambda f: f.seq,
    "evt.rawtime": lambda f: int(f.ev["ts"]),
    "evt.time": _evt_time,
    "evt.time.iso8601": lambda f: _time_iso(int(f.ev["ts"])),
    "evt.time.s": lambda f: format_time(int(f.ev["ts"]), "evt.time.s"),
    "evt.datetime.s": lambda f: format_time(int(f.ev["ts"]), "evt.datetime.s"),
    "evt.rawtime.s": lambda f: int(f.ev["ts"]) // 10**9,
    "evt.rawtime.ns": lambda f: int(f.ev["ts"]) % 10**9,
    "evt.datetime": lambda f: _time_iso(int(f.ev["ts"]))[:19].replace("T", " "),
    "evt.hostname": lambda f: f.host,
    "evt.source": lambda f: "syscall",
    "evt.dir": lambda f: "<",
    "evt.res": lambda f: flags.res_text(int(f.ev.get("res", 0))),
    "evt.rawres": lambda f: int(f.ev.get("res", 0)),
    "evt.failed": lambda f: int(f.ev.get("res", 0)) < 0,
    "evt.count": lambda f: 1,
    "evt.count.exit": lambda f: 1,  # every event the sensor sends is a syscall's exit (or a meta event)
    "evt.count.error": lambda f: int(int(f.ev.get("res", 0)) < 0),
    "evt.count.error.file": _count_error(FILE_TYPES),
    "evt.count.error.net": _count_error(NET_TYPES),
    "evt.count.error.memory": _count_error(MEMORY_TYPES),
    "evt.count.error.other": _count_error(None),
    "evt.is_io": lambda f: f.ev["type"] in IO_READ_TYPES or f.ev["type"] in IO_WRITE_TYPES,
    "evt.is_io_read": lambda f: f.ev["type"] in IO_READ_TYPES,
    "evt.is_io_write": lambda f: f.ev["type"] in IO_WRITE_TYPES,
    "evt.io_dir": _io_dir,
    "evt.is_wait": lambda f: False,  # no traced syscall waits (Falco: sleep, select, poll & co.)
    "fd.is_server": _is_server,
    "evt.args": _evt_args,
    "evt.is_open_read": _is_open_read,
    "evt.is_open_write": _is_open_write,
    "evt.is_open_exec": lambda f: False,
    "evt.buffer": lambda f: None,
    # proc
    "proc.name": _proc_name,
    "proc.pid": lambda f: f.ev["pid"],
    "proc.vpid": lambda f: (f.proc or {}).get("vpid") or f.ev["pid"],
    "proc.ppid": lambda f: (f.proc or {}).get("ppid") or f.ev.get("ppid") or None,
    "proc.pvpid": lambda f: (f.parent or {}).get("vpid") or (f.parent or {}).get("pid") or None,
    "proc.exe": lambda f: _exe(f.proc),
    "proc.exepath": lambda f: _exepath(f.proc),
    "proc.cmdline": lambda f: _cmdline(f.proc),
    "proc.args": lambda f: _args(f.proc),
    "proc.cwd": lambda f: ((f.proc or {}).get("cwd") or None),
    "proc.tty": _tty,
    "proc.sid": _proc_int("sid"),
    "proc.vpgid": lambda f: _vpgid(f.proc),
    "proc.pgid": _proc_int("pgid"),
    "proc.sname": _sname,
    "proc.sid.exe": lambda f: _exe(_session_leader(f)),
    "proc.sid.exepath": lambda f: _exepath(_session_leader(f)),
    "proc.vpgid.name": lambda f: _name(_group_leader(f)),
    "proc.vpgid.exe": lambda f: _exe(_group_leader(f)),
    "proc.vpgid.exepath": lambda f: _exepath(_group_leader(f)),
    "proc.exeline": lambda f: " ".join([_exe(f.proc) or "", *(f.proc.get("args") or [])]) if f.proc else None,
    "proc.cmdnargs": lambda f: len(f.proc.get("args") or []) if f.proc else None,
    "proc.cmdlenargs": lambda f: sum(len(a) for a in f.proc.get("args") or []) if f.proc else None,
    "proc.loginshellid": _login_shell_id,
    "proc.pid.ts": lambda f: (f.proc or {}).get("start_ts") or None,
    "proc.ppid.ts": lambda f: (f.parent or {}).get("start_ts") or None,
    "proc.ppid.duration": lambda f: _since((f.parent or {}).get("start_ts"), f),
    "thread.ismain": lambda f: f.ev["tid"] == f.ev["pid"],
    "proc.env": lambda f: _env(f.proc),
    "proc.duration": _duration,
    "proc.start_ts": _proc_int("start_ts"),
    "proc.is_exe_from_memfd": lambda f: bool((f.proc or {}).get("exe_from_memfd")) if f.proc else None,
    "proc.is_exe_upper_layer": lambda f: bool((f.proc or {}).get("exe_upper_layer")) if f.proc else None,
    "proc.exe_ino.ctime": lambda f: (f.proc or {}).get("exe_ino_ctime") or None,
    "proc.exe_ino.mtime": lambda f: (f.proc or {}).get("exe_ino_mtime") or None,
    "proc.exe_ino.ctime_duration_proc_start": lambda f: (
        int(f.proc["start_ts"]) - int(f.proc["exe_ino_ctime"]) if f.proc and f.proc.get("exe_ino_ctime") else None),
    "proc.is_vpgid_leader": _vpgid_leader,
    "proc.is_sid_leader": lambda f: (f.proc.get("sid") == f.proc.get("pid")) if f.proc else None,
    "proc.pname": lambda f: _name(f.parent),
    "proc.pexe": lambda f: _exe(f.parent),
    "proc.pexepath": lambda f: _exepath(f.parent),
    "proc.pcmdline": lambda f: _cmdline(f.parent),
    "proc.aname": _ancestor_values(_name),
    "proc.acmdline": _ancestor_values(_cmdline),
    "proc.aexe": _ancestor_values(_exe),
    "proc.aexepath": _ancestor_values(_exepath),
    "proc.apid": _ancestor_values(_pid),
    "thread.tid": lambda f: f.ev["tid"],
    "thread.vtid": _vtid,
    "thread.cap_permitted": _caps("cap_permitted"),
    "thread.cap_effective": _caps("cap_effective"),
    "thread.cap_inheritable": _caps("cap_inheritable"),
    # user / group
    "user.uid": _uid,
    "user.name": _user_name,
    "user.loginuid": _loginuid,
    "user.loginname": _loginname,
    "user.homedir": _user_attr("homedir"),
    "user.shell": _user_attr("shell"),
    "group.gid": lambda f: int(f.ev.get("gid", 0)),
    "group.name": _group_name,
    # fd
    "fd.name": _fd_name,
    "fd.nameraw": lambda f: _args_of(f).get("nameraw") or _fd_name(f),  # the path as passed, before resolution
    "fd.num": _fd_num,
    "fd.type": _fd_type,
    "fd.typechar": _fd_typechar,
    "fd.directory": _fd_directory,
    "fd.filename": _fd_filename,
    "fd.name_changed": lambda f: False if _fd_name(f) else None,
    "fd.sockfamily": lambda f: {1: "unix", 2: "ip", 10: "ip"}.get(_fd_family(f) or -1),
    "fd.l4proto": _l4proto,
    "fd.sip": _net("dip"),
    "fd.cip": _net("sip"),
    "fd.sport": _net("dport"),
    "fd.cport": _net("sport"),
    "fd.lip": _lip,
    "fd.rip": _rip,
    **{name: _dns_names(address) for name, address in DNS_NAME_FIELDS.items()},
    "fd.lport": _lport,
    "fd.rport": _rport,
    "fd.ip": _ip_any,
    "fd.net": _ip_any,
    "fd.snet": _net("dip"),
    "fd.cnet": _net("sip"),
    "fd.lnet": _lip,
    "fd.rnet": _rip,
    "fd.port": _port_any,
    "fd.connected": _connected,
    # container
    "container.id": _container_id,
    "container.name": _container_attr("name", "host"),
    "container.image": _container_attr("image"),
    "container.image.repository": _container_attr("image_repository"),
    "container.image.tag": _container_attr("image_tag"),
    "container.type": _container_attr("type"),
    "container.privileged": _container_privileged,
    "container.start_ts": _container_attr("start_ts"),
    "container.full_id": lambda f: _full_id(f) or _container_id(f),
    "container.image.digest": _container_attr("image_digest"),
    "container.duration": lambda f: _since(_container_start(f), f),
    "container.mounts": _container_mounts,
    "k8s.ns.name": _k8s_label("k8s_ns"),
    "k8s.pod.name": _k8s_label("k8s_pod"),
    "k8s.pod.uid": _k8s_label("k8s_pod_uid"),
    "k8s.pod.id": _k8s_label("k8s_pod_uid"),
    "k8s.pod.full_sandbox_id": _sandbox_id,
    "k8s.pod.sandbox_id": lambda f: (_sandbox_id(f) or "")[:12] or None,
    "container.host_pid": _container_flag("host_pid"),
    "container.host_network": _container_flag("host_network"),
    "container.host_ipc": _container_flag("host_ipc"),
    "container.labels": lambda f: ", ".join(f"{k}:{v}" for k, v in (_container_labels(f) or {}).items()) or None,
    "k8s.pod.labels": lambda f: ", ".join(f"{k}:{v}" for k, v in (_container_labels(f, "pod_labels") or {}).items())
    or None,
    "k8s.pod.ip": _k8s_label("pod_ip"),
}

ARG_EXTRACTORS: dict[str, Callable[[EventFields, str], Any]] = {
    "proc.aname": _ancestor_at(_name),
    "proc.aexe": _ancestor_at(_exe),
    "proc.aexepath": _ancestor_at(_exepath),
    "proc.apid": _ancestor_at(_pid),
    "proc.acmdline": _ancestor_at(_cmdline),
    "proc.env": _env_var,
    "evt.arg": _evt_arg_index,
    "evt.rawarg": lambda f, a: evt_arg(f, a, raw=True),
    "container.mount.dest": _mount_dest,
    "container.label": lambda f, key: (_container_labels(f) or {}).get(key),
    "evt.type.is": _type_is,
    "k8s.pod.label": lambda f, key: (_container_labels(f, "pod_labels") or {}).get(key),
}



def _ancestor_level(getter: Callable[[Record | None], Any], n: int) -> Extractor:
    return lambda f: getter(f.ancestor(n))


# proc.aname[2] & co. are read on every exec: the levels a chain can have get extractors of their own, so their
# keys are not parsed for the argument each time (each equals its ARG_EXTRACTORS reading: tested)
for _field, _getter in (("proc.aname", _name), ("proc.aexe", _exe), ("proc.aexepath", _exepath),
                        ("proc.apid", _pid), ("proc.acmdline", _cmdline)):
    EXTRACTORS.update({f"{_field}[{n}]": _ancestor_level(_getter, n) for n in range(MAX_ANCESTORS + 1)})


def filled(name: str) -> bool:
    """Whether a syscall field can have a value here at all (the others are declared, as Falco's, and always <NA>:
    the sensor does not send what they need). For `peregrine rules fields`."""
    return name in EXTRACTORS or name in ARG_EXTRACTORS or name in ("evt.arg", "evt.rawarg")
