"""`peregrine worker`: one Faust processor; run as many as you like, they share the events partitions."""

from __future__ import annotations

import argparse

from peregrine_cli.common import config_from_args, require_kafka


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("worker", help="run a processor (Faust worker): state, rules, alerts")
    parser.add_argument("--rules", nargs="+", default=[], metavar="FILE", help="rule files or directories")
    parser.add_argument("--metrics-port", type=int, help="/metrics and /healthz port (0 disables)")
    parser.add_argument("--loglevel", default="WARNING")
    parser.add_argument("--decode-only", action="store_true",
                        help="decode each record and discard it (throughput baseline for benchmarks)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from processor.worker import run_worker

    cfg = config_from_args(args)
    require_kafka(cfg)
    if args.metrics_port is not None:
        cfg.worker.metrics_port = args.metrics_port
    return run_worker(cfg, args.rules or cfg.rules_files, args.loglevel, args.decode_only)
