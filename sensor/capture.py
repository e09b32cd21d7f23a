"""Capture: loads the probe with offsets from this kernel's BTF and tracefs, and turns ring-buffer records
into Event dicts.

    cap = Capture(event_types={"openat", "execve"})   # None = everything Peregrine decodes
    cap.start()
    events = cap.poll(100)
    cap.drops(); cap.stats(); cap.close()
"""

from __future__ import annotations

import contextlib
import ctypes
import grp
import io
import os
import pwd
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sensor.btf import BTFError, kernel_offsets
from sensor.decode import KIND_EXEC, KIND_EXIT, KIND_FORK, Decoder, Event
from sensor.proctable import ProcTable
from sensor.ringbuf import RingReader
from sensor.syscalls import NR_SYSCALLS, NUMBERS, SYSCALLS, adaptive_set, filter_table, spec_table
from sensor.tracefs import TracefsError, tracefs_root, tracepoint_offsets

PROBE_SOURCE = Path(__file__).with_name("probe.bpf.c")
COUNTER_NAMES = ("n_drops_buffer", "n_drops_buffer_refused", "n_drops_truncated", "n_deferred_buffer",
                 "n_drops_scratch_map",
                 "", "n_drops_ia32", "n_retries_buffer")  # index = the probe's C_* counter ("": no longer counted)
SWEEP_INTERVAL_S = 30.0
POLL_SLICE_MS = 10
# Records decoded per poll. The agent batches, encodes and produces what a poll returns before draining again, so
# a bounded poll keeps each turn short (~30 ms at 16k) and the ring buffer drained steadily; an unbounded one let a
# backlog grow into one long turn while the probe kept writing (drops at 200k events/s that a 16k poll does not have).
POLL_MAX_EVENTS = 16384
KIND_NAMES = {KIND_EXEC: "execve", KIND_FORK: "clone", KIND_EXIT: "procexit"}


MIN_KERNEL = (5, 15)  # bpf_task_pt_regs: a syscall's arguments read at its exit


class CaptureError(RuntimeError):
    """The probe could not be started; the message is one line saying what is wrong and what to do."""


def kernel_too_old(release: str) -> str | None:
    """Why this kernel cannot run the probe, or None (a release that does not parse is given the benefit)."""
    try:
        major, minor = (int(p) for p in release.split("-", 1)[0].split(".")[:2])
    except ValueError:
        return None
    if (major, minor) < MIN_KERNEL:
        return (f"kernel {release} is older than {MIN_KERNEL[0]}.{MIN_KERNEL[1]}: the probe reads syscall arguments "
                "with bpf_task_pt_regs (5.15+); run the sensor on a newer node image")
    return None


class Capture:
    def __init__(self, event_types: set[str] | None = None, argv_max: int = 32, ring_buffer_pages: int = 1024,
                 capture_env: bool = False, path_components_max: int = 24, fault_refuse_every: int = 0) -> None:
        """`fault_refuse_every` (tests only): the probe treats every Nth record as refused by the ring buffer."""
        if ring_buffer_pages <= 0 or ring_buffer_pages & (ring_buffer_pages - 1):
            raise CaptureError(f"ring_buffer_pages={ring_buffer_pages}: must be a power of two (e.g. 1024)")
        self.types = adaptive_set(event_types)
        self.argv_max = argv_max
        self.ring_pages = ring_buffer_pages
        self.capture_env = capture_env
        self.path_components_max = path_components_max
        self.fault_refuse_every = fault_refuse_every
        self.procs = ProcTable()
        self.decoder = Decoder(self.procs, argv_max)
        self._bpf: Any = None
        self._ring: RingReader | None = None
        self._next_sweep = 0.0
        self._final: dict[str, dict[int, int]] = {}  # the kernel counters as they were when the probe went

    # --- lifecycle -----------------------------------------------------------------------------------------

    def cflags(self) -> list[str]:
        try:
            defines = kernel_offsets()
            defines.update(tracepoint_offsets())
        except (BTFError, TracefsError) as exc:
            raise CaptureError(str(exc)) from None
        defines.update(
            SELF_TGID=os.getpid(), RINGBUF_PAGES=self.ring_pages, EXECVEAT_MAX=4096,
            PATH_COMPONENTS_MAX=self.path_components_max, CAPTURE_ENV=int(self.capture_env),
            NR_EXECVE=SYSCALLS["execve"], NR_EXECVEAT=SYSCALLS["execveat"], NR_CLONE=SYSCALLS["clone"],
            NR_CLONE3=SYSCALLS["clone3"], NR_VFORK=SYSCALLS["vfork"], NR_FORK=SYSCALLS["fork"],
            FAULT_REFUSE_EVERY=self.fault_refuse_every,
        )
        return [f"-D{k}={v}" for k, v in sorted(defines.items())] + ["-Wno-unused-function"]

    def start(self) -> None:
        if os.geteuid() != 0:
            raise CaptureError("the sensor loads eBPF programs: run it as root (sudo peregrine sensor ...)")
        too_old = kernel_too_old(os.uname().release)
        if too_old:
            raise CaptureError(too_old)
        try:
            tracefs_root()
        except TracefsError as exc:
            raise CaptureError(str(exc)) from None
        flags = self.cflags()
        try:
            from bcc import BPF  # type: ignore[import-not-found]
        except ImportError:
            raise CaptureError("python module 'bcc' is missing: run `bash scripts/setup.sh` "
                               "(installs Debian's python3-bpfcc and links it into .venv)") from None
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):
                self._bpf = BPF(text=PROBE_SOURCE.read_bytes(), cflags=flags)
        except Exception as exc:
            last = (stderr.getvalue().strip().splitlines() or [str(exc)])[-1]
            raise CaptureError(f"{PROBE_SOURCE}: BPF compile/load failed: {last} "
                               "(is linux-headers-amd64 installed and linked by scripts/setup.sh?)") from None
        try:
            self._configure()
            b = self._bpf
            tails = b[b"tails"]
            for idx, name in enumerate((b"tail_sock", b"tail_walk", b"tail_exec_end")):
                tails[ctypes.c_int(idx)] = ctypes.c_int(b.load_func(name, BPF.TRACEPOINT).fd)
            b.attach_tracepoint(tp=b"raw_syscalls:sys_exit", fn_name=b"tp_sys_exit")
            b.attach_tracepoint(tp=b"syscalls:sys_enter_execveat", fn_name=b"tp_enter_execveat")
            b.attach_tracepoint(tp=b"sched:sched_process_exec", fn_name=b"tp_sched_exec")
            b.attach_tracepoint(tp=b"sched:sched_process_exit", fn_name=b"tp_sched_exit")
            b.attach_raw_tracepoint(tp=b"sched_process_fork", fn_name=b"rtp_sched_fork")
        except Exception as exc:
            self.close()
            raise CaptureError(f"attaching the probe's tracepoints failed: {exc}") from None
        self.procs.seed_from_proc()
        # Users in the passwd database are sent by the start-up snapshot; only later ones need a "user" event.
        self.decoder.known_uids.update(p.pw_uid for p in pwd.getpwall())
        self.decoder.known_gids.update(g.gr_gid for g in grp.getgrall())
        self._next_sweep = time.monotonic() + SWEEP_INTERVAL_S
        events = self._bpf[b"events"]
        self._ring = RingReader(events.map_fd, self.ring_pages * 4096)

    def _configure(self) -> None:
        b = self._bpf
        want, spec = b[b"interesting"], b[b"argspec"]
        for nr, value in filter_table(self.types).items():
            if nr < NR_SYSCALLS:
                want[ctypes.c_int(nr)] = ctypes.c_uint8(value)
        for nr, value in spec_table(self.types).items():
            if nr < NR_SYSCALLS:
                spec[ctypes.c_int(nr)] = ctypes.c_uint32(value)

    def set_event_types(self, event_types: Iterable[str] | None) -> None:
        """Changes the traced set in place (new rules loaded): no re-attach, no recompile."""
        self.types = adaptive_set(set(event_types) if event_types is not None else None)
        if self._bpf is not None:
            want = self._bpf[b"interesting"]
            table = filter_table(self.types)
            for nr in range(NR_SYSCALLS):
                want[ctypes.c_int(nr)] = ctypes.c_uint8(table.get(nr, 0))
            spec = self._bpf[b"argspec"]
            for nr, value in spec_table(self.types).items():
                spec[ctypes.c_int(nr)] = ctypes.c_uint32(value)

    def close(self) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if self._bpf is not None:
            # Read once more before the maps go: an agent reports its losses after it has stopped, and a
            # closed capture answering zeros hid a flood's buffer drops as uncounted losses.
            self._final = {name: self._percpu_sum(name) for name in ("counters", "per_kind")}
            self._bpf.cleanup()
            self._bpf = None

    def __enter__(self) -> Capture:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading -------------------------------------------------------------------------------------------

    def poll(self, timeout_ms: int = 100, max_events: int = POLL_MAX_EVENTS) -> list[Event]:
        """Events captured since the last poll, in capture order; waits up to timeout_ms when there are none."""
        ring = self._ring
        if ring is None:
            raise CaptureError("Capture.poll() before start() (or after close())")
        out: list[Event] = []
        dec = self.decoder
        dec.out = out
        n = ring.drain(dec.decode_many, max_events)
        if n == 0 and timeout_ms != 0:
            # The probe wakes us only every 256 records per CPU: between wakeups, look every POLL_SLICE_MS.
            deadline = time.monotonic() + timeout_ms / 1000.0
            while n == 0:
                left_ms = int((deadline - time.monotonic()) * 1000)
                if left_ms <= 0:
                    break
                ring.wait(min(left_ms, POLL_SLICE_MS))
                n = ring.drain(dec.decode_many, max_events)
        dec.late_containers()
        dec.out = []
        if time.monotonic() >= self._next_sweep:
            self.procs.sweep()
            self._next_sweep = time.monotonic() + SWEEP_INTERVAL_S
        return out

    def _percpu_sum(self, name: str) -> dict[int, int]:
        if self._bpf is None:
            return dict(self._final.get(name, {}))
        table = self._bpf[name.encode()]
        out: dict[int, int] = {}
        for k, v in table.items():
            total = sum(int(x) for x in v)
            if total:
                out[int(k.value)] = total
        return out

    def drops(self) -> dict[str, int]:
        """Cumulative loss counters by reason (ring buffer full, scratch map, truncation, ...)."""
        counters = self._percpu_sum("counters")
        out = {name: counters.get(i, 0) for i, name in enumerate(COUNTER_NAMES) if name}
        out["n_drops_truncated"] = self.decoder.truncated
        out["n_args_truncated"] = self.decoder.argv_truncated
        return out

    def stats(self) -> dict[str, int]:
        """Events captured per event type since start (counted in the kernel)."""
        out: dict[str, int] = {}
        for kind, n in self._percpu_sum("per_kind").items():
            name = KIND_NAMES.get(kind) or NUMBERS.get(kind, str(kind))
            out[name] = out.get(name, 0) + n
        out["n_evts"] = sum(v for k, v in out.items())
        return out
