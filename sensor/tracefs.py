"""Tracepoint formats read from tracefs at run time.

The layout of a tracepoint's record is published by the running kernel in
``events/<system>/<name>/format``; the probe reads tracepoint arguments only at the offsets found here
(they differ across kernels: e.g. sched_process_fork's comm became a __data_loc string in 6.x).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

TRACEFS_CANDIDATES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))

_FIELD = re.compile(r"field:(?P<decl>[^;]+);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);\s*signed:(?P<signed>\d+);")


class TracefsError(RuntimeError):
    """tracefs is missing or lacks a tracepoint the sensor needs."""


@dataclass(frozen=True)
class TraceField:
    name: str
    decl: str
    offset: int
    size: int
    signed: bool

    @property
    def data_loc(self) -> bool:
        """True for a __data_loc field: a u32 holding (length << 16 | offset) of the data in the record."""
        return "__data_loc" in self.decl


@dataclass(frozen=True)
class TraceFormat:
    system: str
    name: str
    id: int
    fields: dict[str, TraceField]

    def field(self, name: str) -> TraceField:
        try:
            return self.fields[name]
        except KeyError:
            raise TracefsError(f"tracepoint {self.system}:{self.name} has no field {name!r} "
                               f"(fields: {', '.join(self.fields)})") from None


def tracefs_root(mount: bool = True) -> Path:
    """The tracefs mount point, mounting tracefs at /sys/kernel/tracing when it is not mounted yet."""
    for root in TRACEFS_CANDIDATES:
        if (root / "events").is_dir():
            return root
    if mount and Path("/sys/kernel/tracing").is_dir() and os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if Path("/sys/kernel/tracing/events").is_dir():
            return Path("/sys/kernel/tracing")
    raise TracefsError("tracefs is not available (no /sys/kernel/tracing/events): run as root with "
                       "`mount -t tracefs nodev /sys/kernel/tracing` on a kernel with CONFIG_FTRACE_SYSCALLS")


def parse_format(text: str, system: str, name: str) -> TraceFormat:
    tp_id = -1
    fields: dict[str, TraceField] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("ID:"):
            tp_id = int(line.split(":", 1)[1])
            continue
        m = _FIELD.search(line)
        if not m:
            continue
        decl = m["decl"].strip()
        fname = re.sub(r"\[.*\]$", "", decl.split()[-1])
        fields[fname] = TraceField(fname, decl, int(m["off"]), int(m["size"]), m["signed"] == "1")
    return TraceFormat(system, name, tp_id, fields)


def read_format(system: str, name: str, root: Path | None = None) -> TraceFormat:
    root = root or tracefs_root()
    path = root / "events" / system / name / "format"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise TracefsError(f"{path}: tracepoint {system}:{name} does not exist in this kernel") from None
    except PermissionError:
        raise TracefsError(f"{path}: permission denied; run the sensor as root") from None
    return parse_format(text, system, name)


# The tracepoint fields the probe reads: (#define name, system, tracepoint, field).
TRACEPOINT_FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("TP_SYS_EXIT_ID", "raw_syscalls", "sys_exit", "id"),
    ("TP_SYS_EXIT_RET", "raw_syscalls", "sys_exit", "ret"),
    ("TP_EXEC_FILENAME", "sched", "sched_process_exec", "filename"),
    ("TP_EXEC_OLD_PID", "sched", "sched_process_exec", "old_pid"),
)

# Optional fields: (#define name, system, tracepoint, field); the define is -1 when the kernel lacks the field.
OPTIONAL_TRACEPOINT_FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("TP_EXIT_GROUP_DEAD", "sched", "sched_process_exit", "group_dead"),
)


def tracepoint_offsets(root: Path | None = None) -> dict[str, int]:
    """#define name -> offset of each tracepoint field the probe reads (checked for the expected shape)."""
    root = root or tracefs_root()
    out: dict[str, int] = {}
    cache: dict[tuple[str, str], TraceFormat] = {}
    for define, system, tp, fname in TRACEPOINT_FIELDS:
        fmt = cache.get((system, tp)) or cache.setdefault((system, tp), read_format(system, tp, root))
        f = fmt.field(fname)
        out[f"OFF_{define}"] = f.offset
        if fname == "filename" and not f.data_loc:
            raise TracefsError(f"{system}:{tp}: field filename is not a __data_loc string ({f.decl})")
    for define, system, tp, fname in OPTIONAL_TRACEPOINT_FIELDS:
        fmt = cache.get((system, tp)) or cache.setdefault((system, tp), read_format(system, tp, root))
        out[f"OFF_{define}"] = fmt.fields[fname].offset if fname in fmt.fields else -1
    return out
