"""`peregrine alerts tail [--json]`: follow the alerts topic; --json prints one Falco JSON alert per line."""

from __future__ import annotations

import argparse
import sys
import uuid

from peregrine_cli.common import config_from_args, require_kafka


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("alerts", help="read the alerts topic")
    sub = parser.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    tail = sub.add_parser("tail", help="follow the alerts topic")
    tail.add_argument("--json", action="store_true", help="one Falco JSON alert per line")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest retained alert")
    tail.add_argument("--max", type=int, default=0, help="stop after N alerts")
    tail.add_argument("--timeout", type=float, default=0.0, help="stop after N seconds without alerts")
    tail.set_defaults(func=run_tail)


def run_tail(args: argparse.Namespace) -> int:
    import time

    from confluent_kafka import Consumer

    from schemas.codec import decode_alert
    from settings.kafka_clients import consumer_config

    cfg = config_from_args(args)
    require_kafka(cfg)
    # A throwaway group: tailing never moves any real consumer's offsets.
    conf = consumer_config(cfg.kafka, group_id=f"peregrine-tail-{uuid.uuid4().hex[:8]}",
                           **{"auto.offset.reset": "earliest" if args.from_beginning else "latest"})
    consumer = Consumer(conf)
    consumer.subscribe([cfg.kafka.topics.alerts])
    seen = 0
    last = time.monotonic()
    try:
        while True:
            msg = consumer.poll(0.5)
            if msg is None:
                if args.timeout and time.monotonic() - last > args.timeout:
                    return 0
                continue
            if msg.error():
                print(f"peregrine: {msg.topic()}:{msg.partition()}: {msg.error()}", file=sys.stderr)
                continue
            last = time.monotonic()
            raw = msg.value() or b""
            if args.json:
                sys.stdout.write(raw.decode("utf-8", "replace") + "\n")
            else:
                try:
                    sys.stdout.write(str(decode_alert(raw).get("output", "")) + "\n")
                except ValueError as exc:
                    print(f"peregrine: {msg.topic()}:{msg.partition()}:{msg.offset()}: not an alert: {exc}",
                          file=sys.stderr)
            sys.stdout.flush()
            seen += 1
            if args.max and seen >= args.max:
                return 0
    except KeyboardInterrupt:
        return 0
    finally:
        consumer.close()
