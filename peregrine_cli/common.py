"""Shared CLI plumbing: configuration loading and one-line user errors."""

from __future__ import annotations

import argparse
import sys

from settings.config import Config, ConfigError, load_config


def config_from_args(args: argparse.Namespace) -> Config:
    try:
        return load_config(getattr(args, "config", None))
    except ConfigError as exc:
        fail(str(exc))
        raise  # unreachable


def fail(message: str, code: int = 1) -> None:
    print(f"peregrine: error: {message}", file=sys.stderr)
    raise SystemExit(code)
