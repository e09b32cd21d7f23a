"""The `peregrine` command: one entry point, one subcommand module per role."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module exposes `register(subparsers)`, adding its subcommand with `set_defaults(func=...)`,
# where func(args) -> int is the exit code. Modules are imported lazily-tolerant so one broken role
# never takes the whole command down.
SUBCOMMAND_MODULES = (
    "peregrine_cli.up",
    "peregrine_cli.kafka",
    "peregrine_cli.sensor",
    "peregrine_cli.worker",
    "peregrine_cli.outputs",
    "peregrine_cli.alerts",
    "peregrine_cli.rules",
    "peregrine_cli.hunt",
    "peregrine_cli.ui",
    "peregrine_cli.topology",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="peregrine", description="Falco-style runtime security on Kafka.")
    parser.add_argument("-c", "--config", help="peregrine.yaml (default: ./peregrine.yaml if present)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
