"""`peregrine kafka start|stop|status`: the real local broker."""

from __future__ import annotations

import argparse

from deploy.local_kafka import KafkaError, LocalKafka
from peregrine_cli.common import config_from_args, fail


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("kafka", help="run the local single-node KRaft Kafka broker")
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    broker = LocalKafka(config_from_args(args))
    try:
        if args.action == "start":
            pid = broker.start()
            print(f"kafka: running, pid {pid}, on {broker.bootstrap} (state in {broker.home})")
        elif args.action == "stop":
            print("kafka: stopped" if broker.stop() else "kafka: was not running")
        else:
            print(f"kafka: {broker.status()}")
    except KafkaError as exc:
        fail(str(exc))
    return 0
