"""Probe records -> Event dicts (schemas/event_batch.avsc), in capture order.

One fixed 136-byte header (struct.Struct, one unpack per record) and up to eight variable blobs whose lengths
the header carries. Per-syscall work is a dict lookup to a small method; strings are decoded only where a
blob exists. Process/fd state that paths and fd.name need lives in ProcTable.
"""

from __future__ import annotations

import grp
import mmap
import pwd
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from sensor.container_runtime import ContainerMetadata
from sensor.containers import container_from_components
from sensor.flags import CLONE_THREAD, clone_flags_text
from sensor.proctable import FdInfo, ProcTable
from sensor.syscalls import FD_BASED, NUMBERS, SYSCALLS

try:  # openat/close in C (sensor/record_decoder.c); built by `pip install`, optional where there is no compiler
    from sensor import _record_decoder  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - the test suite asserts it is built here
    _record_decoder = None
if FdInfo.__slots__ != ("name", "args"):  # pragma: no cover - record_decoder.c fills exactly these two slots
    _record_decoder = None

HDR = struct.Struct("<Qq6QIHHIIIIIII8HI16s")
_unpack_hdr = HDR.unpack_from
HDR_SIZE = 136
assert HDR.size == HDR_SIZE
PROCINFO = struct.Struct("<6Q8I")  # ..., sessionid, loginuid, flags (PI_*), vpgid
SOCKTUPLE = struct.Struct("<HHHH16s16s")
OPEN_HOW = struct.Struct("<QQQ")

KIND_EXEC, KIND_FORK, KIND_EXIT = 1000, 1001, 1002
F_TRUNCATED = 1
PI_EXE_UPPER_LAYER = 2
AT_FDCWD = -100
UNSET_LOGINUID = 0xFFFFFFFF
AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
SEND_RECV = frozenset({"sendto", "sendmsg", "recvfrom", "recvmsg"})
L4 = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp"}

Event = dict[str, Any]
Buffer = mmap.mmap  # the ring buffer's mapping: unpack_from in place, slices are bytes


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - 0x100000000 if v & 0x80000000 else v


def _cstr(b: bytes) -> str:
    raw = bytes(b)
    end = raw.find(b"\0")
    return (raw if end < 0 else raw[:end]).decode("utf-8", "replace")


def _components(raw: bytes) -> str:
    """A path from dentry names sent leaf first (each NUL-terminated)."""
    parts = raw.rstrip(b"\0").split(b"\0") if raw else []
    if not parts or parts == [b""]:
        return "/"
    return "/" + "/".join(p.decode("utf-8", "replace") for p in reversed(parts))


def boot_to_epoch_ns() -> int:
    """Offset from CLOCK_BOOTTIME (bpf_ktime_get_boot_ns) to the epoch."""
    return time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)


class Decoder:
    def __init__(self, procs: ProcTable, argv_max: int = 32) -> None:
        self.procs = procs
        self.argv_max = argv_max
        self.epoch = boot_to_epoch_ns()
        self.truncated = 0  # records marked truncated (paths, argv, env)
        self.argv_truncated = 0
        self._comm: dict[bytes, str] = {}
        self.known_uids: set[int] = set()
        self.known_gids: set[int] = set()
        self.containers = ContainerMetadata()  # container meta events, with the runtime's metadata
        self.meta: list[Event] = []  # user/container meta events to emit before the current event
        self.out: list[Event] = []  # where decode() appends, in capture order
        self._names: dict[int, str] = dict(NUMBERS)
        self._fast: dict[int, Callable[[Event, tuple[Any, ...], Buffer, int], Any]] = {
            SYSCALLS["open"]: self._fast_open,  # (openat and close: record_decoder.c, or inline in decode_many_py)
        }
        self._by_kind: dict[int, Callable[[Event, tuple[Any, ...], list[bytes]], None]] = {}
        for name, nr in SYSCALLS.items():
            fn = getattr(self, f"_sc_{name}", None)
            if fn is not None:
                self._by_kind[nr] = fn
        for name in FD_BASED:  # fd-based calls without their own decoder still name their fd
            if name in SYSCALLS and SYSCALLS[name] not in self._by_kind and SYSCALLS[name] not in self._fast:
                self._by_kind[SYSCALLS[name]] = self._generic_fd
        self._by_kind[KIND_EXEC] = self._exec
        self._by_kind[KIND_FORK] = self._fork
        self._by_kind[KIND_EXIT] = self._exit

    def decode(self, view: Buffer, off: int, length: int = 0) -> None:
        """Appends one record's event (after any meta event it needs first) to self.out."""
        self.decode_many(view, [off])

    def decode_many(self, view: Buffer, offsets: list[int]) -> None:
        """Appends the events of the records at `offsets` to self.out, in order: openat and close in C where it
        was built, the rest (and everything without it) in decode_many_py."""
        if _record_decoder is None:
            self.decode_many_py(view, offsets)
            return
        nr_openat, nr_close = SYSCALLS["openat"], SYSCALLS["close"]
        self.truncated += _record_decoder.decode_many(view, offsets, (
            self, self.out, self._comm, self.procs.procs, self.procs, FdInfo, self.procs.max_fds, self.epoch,
            self.known_uids, self.known_gids, nr_openat, nr_close, self._names[nr_openat], self._names[nr_close]))

    def decode_many_py(self, view: Buffer, offsets: list[int]) -> None:
        """decode_many in Python: every kind, and the reference the C decoder is tested against.

        One loop with everything it touches in locals, and openat/close (most of a busy host's events)
        decoded inline: Python's per-call and attribute costs are most of the per-event budget.
        """
        out, unpack, epoch, names, comms = self.out, _unpack_hdr, self.epoch, self._names, self._comm
        known_gids = self.known_gids
        known_uids, procs, max_fds, fast, by_kind = self.known_uids, self.procs.procs, self.procs.max_fds, \
            self._fast, self._by_kind
        nr_openat, nr_close = SYSCALLS["openat"], SYSCALLS["close"]
        for off in offsets:
            h = unpack(view, off)
            kind = h[9]
            comm = comms.get(h[27])
            if comm is None:
                if len(comms) > 4096:  # bounded: comms are attacker-chosen
                    comms.clear()
                comm = comms[h[27]] = _cstr(h[27])
            loginuid = h[17]
            uid, pid, res = h[14], h[12], h[1]
            if kind == nr_openat:
                dirfd = h[2] & 0xFFFFFFFF
                if dirfd & 0x80000000:
                    dirfd -= 0x100000000
                n = h[18]
                pos = off + HDR_SIZE
                name = view[pos:pos + n - 1].decode("utf-8", "replace") if n else ""
                args = {"name": name, "flags": str(h[4]), "mode": str(h[5]), "fd": str(res), "dirfd": str(dirfd)}
                if name[:1] != "/" or "/." in name or "//" in name:
                    args["name"] = resolved = self.procs.resolve(pid, name, dirfd)
                    if resolved != name:
                        args["nameraw"] = name  # fd.nameraw: the path as passed
                    name = resolved
                if res >= 0:
                    st = procs.get(pid)
                    if st is None:
                        st = self.procs.get(pid)
                    if len(st.fds) < max_fds:
                        st.fds[res] = FdInfo(name)
            elif kind == nr_close:
                fd = h[2] & 0xFFFFFFFF
                if fd & 0x80000000:
                    fd -= 0x100000000
                args = {"fd": str(fd)}
                if res == 0:
                    st = procs.get(pid)
                    info = st.fds.pop(fd, None) if st is not None else None
                    if info is not None:
                        args["fd.name"] = info.name
            else:
                args = {}
            ev: Event = {
                "ts": h[0] + epoch, "type": names.get(kind, ""), "tid": h[11], "pid": pid, "ppid": h[13],
                "uid": uid, "gid": h[15], "euid": h[16], "loginuid": -1 if loginuid == UNSET_LOGINUID else loginuid,
                "comm": comm, "res": res, "args": args, "proc": None,
            }
            if h[10] and kind != KIND_EXEC:  # (a long command line is n_args_truncated, not a loss)
                self.truncated += 1
            if uid not in known_uids:
                self._user(uid, ev)
            if h[15] not in known_gids:
                self._group(h[15], ev)
            if kind != nr_openat and kind != nr_close:
                fastfn = fast.get(kind)
                if fastfn is not None:
                    fastfn(ev, h, view, off + HDR_SIZE)
                else:
                    fn = by_kind.get(kind)
                    if fn is not None:
                        blobs: list[bytes] = []
                        pos = off + HDR_SIZE
                        for n in h[18:26]:
                            blobs.append(view[pos:pos + n])
                            pos += n
                        fn(ev, h, blobs)
            if self.meta:
                out.extend(self.meta)
                self.meta.clear()
            out.append(ev)

    def _fast_open(self, ev: Event, h: tuple[Any, ...], view: Buffer, pos: int, dirfd: int = AT_FDCWD,
                   flags_i: int = 3, mode_i: int = 4) -> dict[str, str]:
        n = h[18]
        name = view[pos:pos + n - 1].decode("utf-8", "replace") if n else ""
        pid, res = h[12], h[1]
        args = {"name": name, "flags": str(h[flags_i]), "mode": str(h[mode_i]), "fd": str(res)}
        if name[:1] != "/" or "/." in name or "//" in name:
            args["name"] = resolved = self.procs.resolve(pid, name, dirfd)
            if resolved != name:
                args["nameraw"] = name
            name = resolved
        ev["args"] = args
        if res >= 0:
            st = self.procs.procs.get(pid)
            if st is None:
                st = self.procs.get(pid)
            if len(st.fds) < self.procs.max_fds:
                st.fds[res] = FdInfo(name)
        return args

    def late_containers(self) -> None:
        """Appends a second container meta event for each container whose CRI answer (labels, pod IP) came after
        the capture stopped waiting for it (ContainerMetadata.late): complete, it replaces the first."""
        late = self.containers.late()
        if late:
            header: Event = {"ts": time.time_ns(), "tid": 0, "pid": 0, "ppid": 0, "uid": 0, "gid": 0, "euid": 0,
                             "loginuid": -1, "comm": ""}
            self.out.extend(_meta(header, "container", args) for args in late)

    def _group(self, gid: int, ev: Event) -> None:
        self.known_gids.add(gid)
        try:
            name = grp.getgrgid(gid).gr_name
        except KeyError:
            name = ""
        self.meta.append(_meta(ev, "group", {"gid": str(gid), "name": name}))

    def _user(self, uid: int, ev: Event) -> None:
        self.known_uids.add(uid)
        try:
            pw = pwd.getpwuid(uid)
            args = {"uid": str(uid), "name": pw.pw_name, "homedir": pw.pw_dir, "shell": pw.pw_shell}
        except KeyError:
            args = {"uid": str(uid), "name": "", "homedir": "", "shell": ""}
        self.meta.append(_meta(ev, "user", args))

    def _container(self, names: list[str], pid: int, ev: Event) -> str:
        """Container id (12 hex) from the cgroup names the probe sent (leaf and parent per hierarchy)."""
        ref = None
        for i in range(0, len(names) - 1, 2):
            ref = container_from_components([names[i + 1], names[i]])
            if ref:
                break
        if ref is None:
            return ""
        args = self.containers.announce(ref)  # the runtime's state files, read once per new container
        if args is not None:
            self.meta.append(_meta(ev, "container", args))
        return ref.id

    # --- process events ----------------------------------------------------------------------------------

    def _exec(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["type"] = NUMBERS.get(h[2], "execve")
        pi = PROCINFO.unpack_from(b[0], 0) if len(b) > 0 and len(b[0]) >= PROCINFO.size else (0,) * 14
        filename = _cstr(b[1]) if len(b) > 1 else ""
        argv_raw = bytes(b[2]) if len(b) > 2 else b""
        argv = [a.decode("utf-8", "replace") for a in argv_raw.rstrip(b"\0").split(b"\0")] if argv_raw else []
        truncated = bool(h[10] & F_TRUNCATED) and len(argv_raw) >= 4096
        if len(argv) > self.argv_max:
            argv, truncated = argv[:self.argv_max], True
        if truncated:
            self.argv_truncated += 1
        env = [e.decode("utf-8", "replace") for e in bytes(b[3]).rstrip(b"\0").split(b"\0")] if len(b) > 3 and len(b[3]) else []
        cwd = _components(bytes(b[4])) if len(b) > 4 and len(b[4]) else ""
        exe_file = _components(bytes(b[5])) if len(b) > 5 and len(b[5]) else ""
        names = [n.decode("utf-8", "replace") for n in bytes(b[6]).split(b"\0")[:-1]] if len(b) > 6 else []
        pid = ev["pid"]
        st = self.procs.get(pid)
        if cwd:
            st.cwd = cwd
        exepath = self.procs.resolve(pid, filename) if filename and not filename.startswith("/dev/fd/") else exe_file
        st.container_id = self._container(names, pid, ev)
        ev["args"] = {"filename": filename}
        ev["proc"] = {
            "exe": argv[0] if argv else filename, "exepath": exepath, "args": argv[1:],
            "args_truncated": truncated, "cwd": st.cwd, "tty": pi[9], "sid": pi[6], "pgid": pi[7], "vpid": pi[8],
            "vpgid": pi[13], "start_ts": pi[0] + self.epoch if pi[0] else 0, "env": env, "container_id": st.container_id,
            "cap_permitted": pi[2], "cap_effective": pi[3], "cap_inheritable": pi[1],
            "exe_from_memfd": exe_file.startswith("/memfd:"), "exe_upper_layer": bool(pi[12] & PI_EXE_UPPER_LAYER),
            "exe_ino_ctime": pi[4] * 1_000_000_000, "exe_ino_mtime": pi[5] * 1_000_000_000,
        }

    def _fork(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        child_tid, child_pid, flags, sc = h[2], h[3], h[4], h[5]
        name = NUMBERS.get(sc, "clone")
        ev["type"] = name if name in ("clone", "clone3", "fork", "vfork") else "clone"
        if child_pid == ev["pid"]:
            flags |= CLONE_THREAD
        else:
            self.procs.fork(ev["pid"], child_pid)
        ev["args"] = {"child_tid": str(child_tid), "child_pid": str(child_pid), "flags": clone_flags_text(flags)}
        if b and len(b[0]) >= PROCINFO.size:
            pi = PROCINFO.unpack_from(b[0], 0)
            ev["args"]["child_vpid"] = str(pi[8])  # the child's pid in its own pid namespace
            st = self.procs.get(child_pid)
            ev["proc"] = {"cwd": st.cwd, "tty": pi[9], "sid": pi[6], "pgid": pi[7], "vpid": pi[8],
                          "vpgid": pi[13], "start_ts": pi[0] + self.epoch if pi[0] else 0, "container_id": st.container_id,
                          "cap_permitted": pi[2], "cap_effective": pi[3], "cap_inheritable": pi[1]}

    def _exit(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["type"] = "procexit"
        status = h[2]
        ev["args"] = {"status": str(status), "ret": str((status >> 8) & 0xFF), "sig": str(status & 0x7F)}
        if h[3] and ev["tid"] == ev["pid"]:
            self.procs.exit(ev["pid"])

    # --- files ---------------------------------------------------------------------------------------------

    def _open_common(self, ev: Event, path: str, dirfd: int, flags: int, mode: int) -> None:
        pid, res = ev["pid"], ev["res"]
        name = self.procs.resolve(pid, path, dirfd)
        ev["args"] = {"name": name, "flags": str(flags), "mode": str(mode), "fd": str(res)}
        if name != path:
            ev["args"]["nameraw"] = path
        if res >= 0:
            self.procs.set_fd(pid, res, FdInfo(name))

    def _sc_creat(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        self._open_common(ev, _cstr(b[0]) if b else "", AT_FDCWD, 0o1101, h[3])

    def _sc_openat2(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        dirfd = _s32(h[2])
        flags = mode = resolve = 0
        if len(b) > 3 and len(b[3]) >= OPEN_HOW.size:
            flags, mode, resolve = OPEN_HOW.unpack_from(b[3], 0)
        self._open_common(ev, _cstr(b[0]) if b else "", dirfd, flags, mode)
        ev["args"]["dirfd"] = str(dirfd)
        ev["args"]["resolve"] = str(resolve)

    def _path(self, ev: Event, b: list[bytes], slot: int, dirfd: int = AT_FDCWD) -> str:
        return self.procs.resolve(ev["pid"], _cstr(b[slot]), dirfd) if len(b) > slot and len(b[slot]) else ""

    def _dup(self, ev: Event, h: tuple[Any, ...]) -> None:
        fd, res, pid = _s32(h[2]), ev["res"], ev["pid"]
        args = {"fd": str(fd), "newfd": str(res)}
        info = self.procs.fd(pid, fd)
        if info is not None:
            args["fd.name"] = info.name
            if info.args:
                args.update(info.args)
            if res >= 0:
                self.procs.set_fd(pid, res, info)
        ev["args"] = args

    def _sc_dup(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        self._dup(ev, h)

    def _sc_dup2(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        self._dup(ev, h)

    def _sc_dup3(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        self._dup(ev, h)
        ev["args"]["flags"] = str(h[4])

    def _fd_args(self, ev: Event, fd: int) -> dict[str, str]:
        args = {"fd": str(fd)}
        info = self.procs.fd(ev["pid"], fd)
        if info is not None:
            args["fd.name"] = info.name
            if info.args:
                args.update(info.args)
        return args

    def _generic_fd(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = self._fd_args(ev, _s32(h[2]))

    def _sc_chdir(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        st = self.procs.get(ev["pid"])
        path = _components(bytes(b[6])) if len(b) > 6 and ev["res"] == 0 else self._path(ev, b, 0)
        if ev["res"] == 0:
            st.cwd = path
        ev["args"] = {"path": path}

    def _sc_fchdir(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        fd = _s32(h[2])
        ev["args"] = self._fd_args(ev, fd)
        if ev["res"] == 0 and len(b) > 6:
            self.procs.get(ev["pid"]).cwd = ev["args"]["path"] = _components(bytes(b[6]))

    def _sc_chmod(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"filename": self._path(ev, b, 0), "mode": str(h[3])}

    def _sc_fchmod(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = self._fd_args(ev, _s32(h[2]))
        ev["args"]["mode"] = str(h[3])

    def _sc_fchmodat(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        dirfd = _s32(h[2])
        ev["args"] = {"dirfd": str(dirfd), "filename": self._path(ev, b, 0, dirfd), "mode": str(h[4])}

    _sc_fchmodat2 = _sc_fchmodat

    def _sc_mkdir(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"path": self._path(ev, b, 0), "mode": str(h[3])}

    def _sc_mkdirat(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        dirfd = _s32(h[2])
        ev["args"] = {"dirfd": str(dirfd), "path": self._path(ev, b, 0, dirfd), "mode": str(h[4])}

    def _sc_rmdir(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"path": self._path(ev, b, 0)}

    def _sc_unlink(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        p = self._path(ev, b, 0)
        ev["args"] = {"path": p, "name": p}

    def _sc_unlinkat(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        dirfd = _s32(h[2])
        ev["args"] = {"dirfd": str(dirfd), "name": self._path(ev, b, 0, dirfd), "flags": str(h[4])}

    def _sc_rename(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"oldpath": self._path(ev, b, 0), "newpath": self._path(ev, b, 1)}

    def _sc_renameat(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        od, nd = _s32(h[2]), _s32(h[4])
        ev["args"] = {"olddirfd": str(od), "oldpath": self._path(ev, b, 0, od), "newdirfd": str(nd),
                      "newpath": self._path(ev, b, 1, nd)}

    def _sc_renameat2(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        self._sc_renameat(ev, h, b)
        ev["args"]["flags"] = str(h[6])

    def _sc_link(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"oldpath": self._path(ev, b, 0), "newpath": self._path(ev, b, 1)}

    def _sc_linkat(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        od, nd = _s32(h[2]), _s32(h[4])
        ev["args"] = {"olddir": str(od), "oldpath": self._path(ev, b, 0, od), "newdir": str(nd),
                      "newpath": self._path(ev, b, 1, nd), "flags": str(h[6])}

    def _sc_symlink(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"target": _cstr(b[0]) if b else "", "linkpath": self._path(ev, b, 1)}

    def _sc_symlinkat(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        nd = _s32(h[3])
        ev["args"] = {"target": _cstr(b[0]) if b else "", "linkdirfd": str(nd), "linkpath": self._path(ev, b, 1, nd)}

    def _sc_execve(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:  # failures only
        ev["args"] = {"filename": self._path(ev, b, 0)}

    def _sc_execveat(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        dirfd = _s32(h[2])
        ev["args"] = {"dirfd": str(dirfd), "filename": self._path(ev, b, 0, dirfd), "flags": str(h[6])}

    def _sc_init_module(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"name": "", "len": str(h[3]), "uargs": _cstr(b[0]) if b else ""}

    def _sc_finit_module(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        args = self._fd_args(ev, _s32(h[2]))
        args["name"] = args.get("fd.name", "")
        args["uargs"] = _cstr(b[0]) if b else ""
        args["flags"] = str(h[4])
        ev["args"] = args

    def _sc_memfd_create(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        name = _cstr(b[0]) if b else ""
        ev["args"] = {"name": name, "flags": str(h[3])}
        if ev["res"] >= 0:
            self.procs.set_fd(ev["pid"], ev["res"], FdInfo(f"/memfd:{name} (deleted)"))

    def _sc_mount(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"dev": _cstr(b[0]) if len(b) > 0 else "", "dir": self._path(ev, b, 1),
                      "type": _cstr(b[2]) if len(b) > 2 else "", "flags": str(h[5])}

    def _sc_umount2(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"name": self._path(ev, b, 0), "flags": str(h[3])}

    # --- ids, namespaces, misc ---------------------------------------------------------------------------

    def _sc_setuid(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"uid": str(_s32(h[2]))}

    def _sc_setgid(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"gid": str(_s32(h[2]))}

    def _sc_setreuid(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"ruid": str(_s32(h[2])), "euid": str(_s32(h[3]))}

    def _sc_setregid(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"rgid": str(_s32(h[2])), "egid": str(_s32(h[3]))}

    def _sc_setresuid(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"ruid": str(_s32(h[2])), "euid": str(_s32(h[3])), "suid": str(_s32(h[4]))}

    def _sc_setresgid(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"rgid": str(_s32(h[2])), "egid": str(_s32(h[3])), "sgid": str(_s32(h[4]))}

    def _sc_setpgid(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"pid": str(_s32(h[2])), "pgid": str(_s32(h[3]))}

    def _sc_ptrace(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"request": str(h[2]), "pid": str(_s32(h[3]))}

    def _sc_setns(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = self._fd_args(ev, _s32(h[2]))
        ev["args"]["nstype"] = str(h[3])

    def _sc_unshare(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"flags": str(h[2])}

    def _sc_bpf(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"cmd": str(h[2])}

    def _sc_userfaultfd(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"flags": str(h[2])}

    def _sc_kill(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"pid": str(_s32(h[2])), "sig": str(h[3])}

    def _sc_tgkill(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"pid": str(_s32(h[2])), "tid": str(_s32(h[3])), "sig": str(h[4])}

    def _sc_prctl(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = {"option": str(h[2]), "arg2": str(h[3])}

    def _sc_fchown(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        ev["args"] = self._fd_args(ev, _s32(h[2]))
        ev["args"].update(uid=str(_s32(h[3])), gid=str(_s32(h[4])))

    # --- sockets -------------------------------------------------------------------------------------------

    def _sc_socket(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        domain, stype, proto = h[2], h[3], h[4]
        ev["args"] = {"domain": str(domain), "type": str(stype), "proto": str(proto)}
        if ev["res"] >= 0:
            base = stype & 0xF
            l4 = "tcp" if base == socket.SOCK_STREAM and domain in (AF_INET, AF_INET6) else \
                "udp" if base == socket.SOCK_DGRAM and domain in (AF_INET, AF_INET6) else ""
            sargs = {"family": str(domain)}
            if l4:
                sargs["l4proto"] = l4
            self.procs.set_fd(ev["pid"], ev["res"], FdInfo("", sargs))

    def _socket_event(self, ev: Event, h: tuple[Any, ...], b: list[bytes], fd: int, server_local: bool) -> None:
        """Falco's tuple: s* = client side, d* = server side (remote for connect/send, local for accept/bind)."""
        pid = ev["pid"]
        args: dict[str, str] = {"fd": str(fd)}
        known = self.procs.procs.get(pid)
        info = known.fds.get(fd) if known else None
        if info and info.args:
            args.update(info.args)
        addr = _sockaddr(b[4]) if len(b) > 4 and len(b[4]) >= 2 else None
        if ev["type"] in SEND_RECV and info is not None and info.args:
            if "sip" in info.args and (addr is None or not addr[1] or ev["type"] in ("recvfrom", "recvmsg")):
                # A connected socket: its tuple (and which end is the server) is known from connect/accept.
                args["fd.name"] = info.name
                ev["args"] = args
                return
            if "dip" in info.args and ev["type"] in ("recvfrom", "recvmsg"):
                server_local = True  # a bound (server) socket receiving
        tup = SOCKTUPLE.unpack_from(b[5], 0) if len(b) > 5 and len(b[5]) >= SOCKTUPLE.size else None
        family = tup[0] if tup and tup[0] else (addr[0] if addr else int(args.get("family", "0") or 0))
        if family:
            args["family"] = str(family)
        if tup and tup[3] and family in (AF_INET, AF_INET6):
            args["l4proto"] = L4.get(tup[3], str(tup[3]))
        if family in (AF_INET, AF_INET6):
            af = socket.AF_INET if family == AF_INET else socket.AF_INET6
            n = 4 if family == AF_INET else 16
            local_ip = socket.inet_ntop(af, tup[4][:n]) if tup else ""
            local_port = tup[1] if tup else 0
            remote_ip = socket.inet_ntop(af, tup[5][:n]) if tup else ""
            remote_port = tup[2] if tup else 0
            etype = ev["type"]
            if etype == "bind":
                if addr:
                    local_ip, local_port = addr[1], addr[2] or local_port
            elif addr and addr[1] and (not remote_port or etype in ("sendto", "sendmsg", "connect", "accept",
                                                                    "accept4", "recvfrom", "recvmsg")):
                remote_ip, remote_port = addr[1], addr[2]  # the peer the user buffer names
            if server_local:
                cip, cport, sip, sport = remote_ip, remote_port, local_ip, local_port
            else:
                cip, cport, sip, sport = local_ip, local_port, remote_ip, remote_port
            if ev["type"] in ("bind", "listen"):
                args.update(dip=sip, dport=str(sport))
                name = f"{sip}:{sport}"
            else:
                args.update(sip=cip, sport=str(cport), dip=sip, dport=str(sport))
                name = f"{_bracket(cip)}:{cport}->{_bracket(sip)}:{sport}"
            args["fd.name"] = name
        elif family == AF_UNIX:
            path = addr[1] if addr else (info.name if info else "")
            if path:
                args["path"] = path
            args["fd.name"] = path
        if ev["res"] >= 0 or ev["res"] == -115:  # EINPROGRESS: a non-blocking connect under way
            target = ev["res"] if server_local and ev["type"] in ("accept", "accept4") else fd
            sargs = {k: v for k, v in args.items() if k not in ("fd", "fd.name")}
            self.procs.set_fd(pid, target, FdInfo(args.get("fd.name", ""), sargs))
        ev["args"] = args

    def _sc_connect(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        self._socket_event(ev, h, b, _s32(h[2]), server_local=False)

    def _sc_sendto(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        self._socket_event(ev, h, b, _s32(h[2]), server_local=False)
        ev["args"]["size"] = str(h[4])

    def _sc_sendmsg(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        self._socket_event(ev, h, b, _s32(h[2]), server_local=False)

    def _sc_recvfrom(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        self._socket_event(ev, h, b, _s32(h[2]), server_local=False)

    def _sc_recvmsg(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        self._socket_event(ev, h, b, _s32(h[2]), server_local=False)

    def _sc_accept(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        self._socket_event(ev, h, b, _s32(h[2]), server_local=True)
        ev["args"]["fd"] = str(ev["res"])
        ev["args"]["listen_fd"] = str(_s32(h[2]))

    def _sc_accept4(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        self._sc_accept(ev, h, b)
        ev["args"]["flags"] = str(h[5])

    def _sc_bind(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        self._socket_event(ev, h, b, _s32(h[2]), server_local=True)

    def _sc_listen(self, ev: Event, h: tuple[Any, ...], b: list[bytes]) -> None:
        self._socket_event(ev, h, b, _s32(h[2]), server_local=True)
        ev["args"]["backlog"] = str(_s32(h[3]))


def _bracket(ip: str) -> str:
    return ip


def _sockaddr(raw: bytes) -> tuple[int, str, int] | None:
    """(family, address or unix path, port) of a user sockaddr."""
    data = bytes(raw)
    family = int.from_bytes(data[:2], "little")
    if family == AF_INET and len(data) >= 8:
        return family, socket.inet_ntop(socket.AF_INET, data[4:8]), int.from_bytes(data[2:4], "big")
    if family == AF_INET6 and len(data) >= 24:
        return family, socket.inet_ntop(socket.AF_INET6, data[8:24]), int.from_bytes(data[2:4], "big")
    if family == AF_UNIX:
        path = data[2:]
        if path[:1] == b"\0":
            return family, "@" + path[1:].split(b"\0", 1)[0].decode("utf-8", "replace"), 0
        return family, path.split(b"\0", 1)[0].decode("utf-8", "replace"), 0
    return (family, "", 0) if family else None


def _meta(ev: Event, kind: str, args: dict[str, str]) -> Event:
    return {"ts": ev["ts"], "type": kind, "tid": ev["tid"], "pid": ev["pid"], "ppid": ev["ppid"], "uid": ev["uid"],
            "gid": ev["gid"], "euid": ev["euid"], "loginuid": ev["loginuid"], "comm": ev["comm"], "res": 0,
            "args": args, "proc": None}
