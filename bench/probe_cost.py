"""What each of the sensor's BPF programs costs per run, from the kernel's own accounting.

With `kernel.bpf_stats_enabled=1` the kernel times every BPF program run (`run_time_ns`, `run_cnt` in the
program fd's /proc fdinfo). This starts the sensor's capture in-process with the bench rule's syscalls, reads
everything it captures, runs `bench/openclose.c` paced at RATE syscalls/s (0 = flat out), and prints ns per run
of each program: the in-kernel price a traced syscall pays, without the noise of wall or CPU time of a whole
process. The stats' own timing (two clock reads per run) is included, so absolute numbers are slightly high;
compare runs of the same command.

    sudo .venv/bin/python bench/probe_cost.py --rate 100000 --iterations 500000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sensor.capture import Capture  # noqa: E402

STATS = Path("/proc/sys/kernel/bpf_stats_enabled")
WORKLOAD = Path(__file__).with_name("openclose.c")


def prog_stats() -> dict[int, tuple[int, int]]:
    """fd -> (run_time_ns, run_cnt) for this process's BPF program fds."""
    out = {}
    for fd in os.listdir("/proc/self/fdinfo"):
        try:
            text = Path(f"/proc/self/fdinfo/{fd}").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if "run_cnt" in fields:
            out[int(fd)] = (int(fields["run_time_ns"]), int(fields["run_cnt"]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=100_000, help="syscalls/s offered (0 = flat out)")
    parser.add_argument("--iterations", type=int, default=500_000, help="open+close pairs")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("probe_cost: run as root (eBPF)", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="peregrine-probe-cost-"))
    binary, target = work / "openclose", work / "target"
    subprocess.run(["cc", "-O2", "-o", str(binary), str(WORKLOAD)], check=True)
    target.write_text("x")
    was = STATS.read_text().strip()
    STATS.write_text("1")
    cap = Capture(event_types={"open", "openat", "openat2", "close"})
    read = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal read
        while not stop.is_set():
            read += len(cap.poll(50))

    try:
        cap.start()
        names = {f.fd: name.decode() for name, f in cap._bpf.funcs.items()}
        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        before = prog_stats()
        argv = [str(binary), str(args.iterations), str(target)] + ([str(args.rate)] if args.rate else [])
        run = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
        time.sleep(1)
        after = prog_stats()
        stop.set()
        thread.join()
        programs = {}
        for fd, (ns, cnt) in after.items():
            d_ns, d_cnt = ns - before.get(fd, (0, 0))[0], cnt - before.get(fd, (0, 0))[1]
            if d_cnt:
                programs[names.get(fd, str(fd))] = {"runs": d_cnt, "ns_per_run": round(d_ns / d_cnt, 1)}
        print(json.dumps({"workload": run, "events_read": read, "drops": cap.drops(), "programs": programs},
                         indent=2))
    finally:
        stop.set()
        cap.close()
        STATS.write_text(was)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
