"""`peregrine up`: the whole pipeline on this host — broker, sensor, worker, outputs (stdout) and web UI — with
alerts printed live. Ctrl-C stops every process it started, the broker included."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local_kafka import KafkaError, LocalKafka
from peregrine_cli.common import config_from_args, fail
from settings.config import Config


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("up", help="run the whole pipeline on this host, alerts printed live")
    parser.add_argument("--rules", nargs="+", default=[], metavar="FILE", help="rule files (default: ours)")
    parser.add_argument("--json", action="store_true", help="print alerts as Falco JSON")
    parser.add_argument("--no-ui", action="store_true", help="do not start the web UI")
    parser.set_defaults(func=run)


@dataclass
class Pipeline:
    cfg: Config
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    broker: LocalKafka | None = None
    started_broker: bool = False

    def spawn(self, name: str, *argv: str, quiet: bool = True) -> None:
        log_dir = self.cfg.state_path / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        out = open(log_dir / f"{name}.log", "ab") if quiet else None  # noqa: SIM115 - owned by the child
        cmd = [sys.executable, "-m", "peregrine_cli.main", *argv]
        proc = subprocess.Popen(cmd, stdout=out or None, stderr=subprocess.STDOUT if out else None,
                                start_new_session=True)
        self.procs.append((name, proc))

    def check(self) -> str | None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                return f"{name} exited with {proc.returncode}: see {self.cfg.state_path / 'logs' / (name + '.log')}"
        return None

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for _, proc in reversed(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self.broker is not None and self.started_broker:
            self.broker.stop()


def preflight() -> None:
    if os.geteuid() != 0:
        fail("the sensor loads eBPF programs: run `peregrine up` as root")
    if not Path("/sys/kernel/btf/vmlinux").exists():
        fail("this kernel has no BTF (/sys/kernel/btf/vmlinux): the sensor needs a kernel built with CONFIG_DEBUG_INFO_BTF")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    preflight()
    rules = args.rules or cfg.rules_files
    for path in rules:
        if not Path(path).exists():
            fail(f"rules file {path} does not exist")
    pipe = Pipeline(cfg)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        pipe.broker = LocalKafka(cfg)
        pipe.started_broker = pipe.broker.running_pid() is None
        print(f"peregrine: starting Kafka on {pipe.broker.bootstrap} ...", file=sys.stderr)
        pipe.broker.start()
        rules_args = ["--rules", *rules] if rules else []
        cfg_args = ["-c", args.config] if args.config else []
        pipe.spawn("worker", *cfg_args, "worker", *rules_args)
        pipe.spawn("sensor", *cfg_args, "sensor", *rules_args)
        if not args.no_ui:
            pipe.spawn("ui", *cfg_args, "ui", quiet=False)
        pipe.spawn("outputs", *cfg_args, "outputs", *(["--json"] if args.json else []), quiet=False)
        print("peregrine: pipeline up (sensor -> Kafka -> worker -> alerts -> stdout). "
              "Try `cat /etc/shadow` as root in another shell. Ctrl-C stops everything.", file=sys.stderr)
        while True:
            problem = pipe.check()
            if problem:
                print(f"peregrine: error: {problem}", file=sys.stderr)
                return 1
            time.sleep(1)
    except KafkaError as exc:
        print(f"peregrine: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nperegrine: stopping ...", file=sys.stderr)
        return 0
    finally:
        pipe.stop()
