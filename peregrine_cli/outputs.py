"""`peregrine outputs [--config outputs.yaml] [--json]`: deliver alerts from the alerts topic.

Without an outputs file: Falco's stdout output (text lines, or JSON with --json), offsets committed after printing.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from outputs.config import OutputSpec, OutputsSpec, load_outputs
from outputs.supervisor import OutputsError, run_outputs
from peregrine_cli.common import config_from_args, fail
from settings.config import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("outputs", help="deliver alerts to stdout, files, syslog, SIEMs and chat")
    parser.add_argument("--config", dest="outputs_config", metavar="OUTPUTS_YAML",
                        help="outputs.yaml (default: outputs_config in peregrine.yaml; none: print to stdout)")
    parser.add_argument("--json", action="store_true", help="print one Falco JSON alert per line (stdout mode)")
    parser.add_argument("--log-level", default="INFO", help="log level for connector messages on stderr")
    parser.set_defaults(func=run)


def stdout_spec(json_lines: bool) -> OutputsSpec:
    """Output connector v1: stdout only, no /metrics."""
    out = OutputSpec(name="stdout", type="stdout", where="peregrine outputs",
                     options={"format": "json" if json_lines else "text"})
    spec = OutputsSpec(outputs=[out])
    spec.metrics.port = 0
    return spec


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = config_from_args(args)
    path = args.outputs_config or cfg.outputs_config
    try:
        spec = load_outputs(path) if path else stdout_spec(args.json)
    except ConfigError as exc:
        fail(str(exc))
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        return run_outputs(cfg, spec, stop)
    except (OutputsError, ConfigError) as exc:
        fail(str(exc))
    return 1
