"""Falco's text forms of raw syscall arguments (open flags, socket domains, ptrace requests, errno names)."""

from __future__ import annotations

import errno
from functools import lru_cache

_OPEN_FLAGS = (
    (0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"), (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"), (0o10000, "O_DSYNC"), (0o40000, "O_DIRECT"), (0o100000, "O_LARGEFILE"),
    (0o200000, "O_DIRECTORY"), (0o400000, "O_NOFOLLOW"), (0o1000000, "O_NOATIME"), (0o2000000, "O_CLOEXEC"),
    (0o4010000, "O_SYNC"), (0o10000000, "O_PATH"), (0o20200000, "O_TMPFILE"),
)
_ACCESS = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR", 3: "O_RDWR"}

SOCKET_FAMILIES = {0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET",
                   4: "AF_IPX", 5: "AF_APPLETALK", 9: "AF_X25", 15: "AF_KEY", 29: "AF_CAN", 31: "AF_BLUETOOTH",
                   38: "AF_ALG", 40: "AF_VSOCK", 44: "AF_XDP"}

PTRACE_REQUESTS = {0: "PTRACE_TRACEME", 1: "PTRACE_PEEKTEXT", 2: "PTRACE_PEEKDATA", 3: "PTRACE_PEEKUSR",
                   4: "PTRACE_POKETEXT", 5: "PTRACE_POKEDATA", 6: "PTRACE_POKEUSR", 7: "PTRACE_CONT",
                   8: "PTRACE_KILL", 9: "PTRACE_SINGLESTEP", 12: "PTRACE_GETREGS", 13: "PTRACE_SETREGS",
                   14: "PTRACE_GETFPREGS", 15: "PTRACE_SETFPREGS", 16: "PTRACE_ATTACH", 17: "PTRACE_DETACH",
                   24: "PTRACE_SYSCALL", 0x4200: "PTRACE_SETOPTIONS", 0x4201: "PTRACE_GETEVENTMSG",
                   0x4202: "PTRACE_GETSIGINFO", 0x4203: "PTRACE_SETSIGINFO", 0x4204: "PTRACE_GETREGSET",
                   0x4205: "PTRACE_SETREGSET", 0x4206: "PTRACE_SEIZE", 0x4207: "PTRACE_INTERRUPT",
                   0x4208: "PTRACE_LISTEN"}

OPEN_TYPES = frozenset({"open", "openat", "openat2", "creat", "open_by_handle_at"})


def _int(raw: str | int | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw, 0) if isinstance(raw, str) else int(raw)
    except ValueError:
        return None


@lru_cache(maxsize=4096)
def open_flags_text(raw: str) -> str:
    value = _int(raw)
    if value is None:
        return raw
    names = [_ACCESS[value & 3]]
    for bit, name in _OPEN_FLAGS:
        if value & bit == bit and name not in names:
            names.append(name)
    if "O_TMPFILE" in names and "O_DIRECTORY" in names:
        names.remove("O_DIRECTORY")
    return "|".join(names)


def open_access(raw: str | None) -> int:
    value = _int(raw)
    return 0 if value is None else value & 3


@lru_cache(maxsize=256)
def socket_family_text(raw: str) -> str:
    value = _int(raw)
    return SOCKET_FAMILIES.get(value, raw) if value is not None else raw


@lru_cache(maxsize=256)
def ptrace_request_text(raw: str) -> str:
    value = _int(raw)
    return PTRACE_REQUESTS.get(value, raw) if value is not None else raw


@lru_cache(maxsize=512)
def res_text(res: int) -> str:
    """evt.res: SUCCESS, an errno name for failures, else the number (fd or byte count)."""
    if res >= 0:
        return "SUCCESS" if res == 0 else str(res)
    return errno.errorcode.get(-res, str(res))
