"""The user-space half of process state: cwd, fd table and container per process.

Paths arrive relative to a cwd or a dirfd and fd-based syscalls name only a number, so the sensor keeps,
per process (tgid), the cwd (from exec, chdir and the start-up /proc walk, inherited at fork) and an fd table
fed by open/socket/connect/accept/dup/close results. Unknown entries (older than the sensor, or opened by an
untraced syscall) are read once from /proc, racing with the process's exit.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field


@dataclass(slots=True)
class FdInfo:
    name: str
    args: dict[str, str] | None = None  # socket fields (family, sip, sport, dip, dport, l4proto, path)


@dataclass
class ProcState:
    cwd: str = ""
    fds: dict[int, FdInfo] = field(default_factory=dict)
    container_id: str = ""


class ProcTable:
    def __init__(self, max_fds_per_proc: int = 65536) -> None:
        self.procs: dict[int, ProcState] = {}
        self.max_fds = max_fds_per_proc

    def get(self, pid: int) -> ProcState:
        st = self.procs.get(pid)
        if st is None:
            st = self.procs[pid] = ProcState(cwd=_readlink(f"/proc/{pid}/cwd"))
        return st

    def seed_from_proc(self) -> None:
        for name in os.listdir("/proc"):
            if name.isdigit():
                pid = int(name)
                self.procs.setdefault(pid, ProcState(cwd=_readlink(f"/proc/{pid}/cwd")))

    def sweep(self) -> int:
        """Forgets processes that are gone (their procexit was lost or never traced); returns how many."""
        alive = {int(n) for n in os.listdir("/proc") if n.isdigit()}
        dead = [pid for pid in self.procs if pid not in alive]
        for pid in dead:
            del self.procs[pid]
        return len(dead)

    def fork(self, parent: int, child: int) -> None:
        src = self.get(parent)
        self.procs[child] = ProcState(cwd=src.cwd, fds=dict(src.fds), container_id=src.container_id)

    def exit(self, pid: int) -> None:
        self.procs.pop(pid, None)

    def cwd(self, pid: int) -> str:
        return self.get(pid).cwd

    def fd(self, pid: int, fd: int) -> FdInfo | None:
        st = self.get(pid)
        info = st.fds.get(fd)
        if info is None and fd >= 0:
            name = _readlink(f"/proc/{pid}/fd/{fd}")
            if name:
                info = FdInfo(name)
                self.set_fd(pid, fd, info)
        return info

    def set_fd(self, pid: int, fd: int, info: FdInfo) -> None:
        fds = self.get(pid).fds
        if len(fds) < self.max_fds or fd in fds:
            fds[fd] = info

    def close_fd(self, pid: int, fd: int) -> FdInfo | None:
        st = self.procs.get(pid)
        return st.fds.pop(fd, None) if st else None

    def resolve(self, pid: int, path: str, dirfd: int = -100) -> str:
        """Absolute, normalized form of a syscall path argument (Falco's fd.name / evt.abspath)."""
        if not path:
            return path
        if path[0] == "/":
            if "/." in path or "//" in path:
                return posixpath.normpath(path).replace("//", "/")
            return path
        if dirfd == -100:
            base = self.cwd(pid)
        else:
            info = self.fd(pid, dirfd)
            base = info.name if info else ""
        if not base:
            return path
        return posixpath.normpath(posixpath.join(base, path)).replace("//", "/")


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""
