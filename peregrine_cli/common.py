"""Shared CLI plumbing: configuration loading and one-line user errors."""

from __future__ import annotations

import argparse
import sys
from typing import Any

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


def require_kafka(cfg: Config, timeout: float = 10.0) -> None:
    """Fail in one line when the broker does not answer, instead of a client retrying forever."""
    import logging

    from confluent_kafka.admin import AdminClient

    from settings.kafka_clients import admin_config

    quiet = logging.getLogger("peregrine.kafka-probe")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    try:
        conf: dict[str, Any] = {**admin_config(cfg.kafka), "logger": quiet}
        AdminClient(conf).list_topics(timeout=timeout)
    except Exception as exc:
        detail = str(exc.args[0]) if exc.args else type(exc).__name__
        fail(f"Kafka is unreachable at {cfg.kafka.bootstrap_servers} ({detail}): start it with "
             f"`peregrine kafka start` or set kafka.bootstrap_servers / PEREGRINE_KAFKA__BOOTSTRAP_SERVERS")
