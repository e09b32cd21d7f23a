"""`peregrine sensor`: capture this host's syscalls (or replay a recording) and ship them to Kafka."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from peregrine_cli.common import config_from_args, fail


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("sensor", help="run the eBPF sensor on this host (root)",
                              description="Capture syscalls with eBPF and ship them to the events topic.")
    p.add_argument("--rules", nargs="+", metavar="FILE", help="rule files deciding which syscalls are traced "
                   "(default: rules_files of peregrine.yaml, else Peregrine's default rules)")
    p.add_argument("--record", metavar="FILE", type=Path, help="also write what is captured to an Avro capture file")
    p.add_argument("--replay", metavar="FILE", type=Path, help="publish a capture file as if live (no eBPF, no root)")
    p.add_argument("--no-kafka", action="store_true", help="capture (and record) without shipping to Kafka")
    p.set_defaults(func=run)


def _kafka_reachable(cfg: object) -> bool:
    from confluent_kafka.admin import AdminClient

    from settings.config import Config
    from settings.kafka_clients import admin_config

    assert isinstance(cfg, Config)
    try:
        conf: dict[str, Any] = {**admin_config(cfg.kafka), "logger": logging.getLogger("kafka-probe")}
        AdminClient(conf).list_topics(timeout=5)
        return True
    except Exception:
        return False


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sensor %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("kafka-probe").setLevel(logging.CRITICAL)
    cfg = config_from_args(args)

    from sensor.agent import (
        Agent,
        AgentOptions,
        EventSource,
        LiveSource,
        ReplaySource,
        SensorError,
        require_root,
        sensor_event_types,
        sensor_ship_types,
    )
    from sensor.journal import JournalError
    from sensor.recording import RecordingError
    from settings.runtime import tune_gc

    try:
        source: EventSource
        if args.replay is not None:
            if not args.replay.is_file():
                fail(f"{args.replay}: no such capture file")
            source = ReplaySource(args.replay)
        else:
            require_root()
            source = LiveSource(sensor_event_types(cfg, args.rules), argv_max=cfg.sensor.argv_max,
                                ring_buffer_pages=cfg.sensor.ring_buffer_pages,
                                container_state_roots=dict(cfg.sensor.container_state_roots),
                                cri_sockets=list(cfg.sensor.cri_sockets),
                                snapshot_interval_s=cfg.sensor.snapshot_interval_s)
        if not args.no_kafka and not _kafka_reachable(cfg):
            logging.warning("Kafka at %s is unreachable: capturing anyway and journaling to %s until it answers",
                            cfg.kafka.bootstrap_servers, cfg.state_path / "sensor" / "journal")
        agent = Agent(cfg, source, AgentOptions(kafka=not args.no_kafka, record=args.record,
                                                ship_types=sensor_ship_types(cfg, args.rules)))
        tune_gc()
        return agent.run()
    except SensorError as exc:
        fail(str(exc))
    except (JournalError, RecordingError) as exc:
        fail(str(exc))
    except Exception as exc:
        if _is_capture_error(exc):  # sensor.capture's one-line reasons (no BTF, no tracefs, ...)
            fail(str(exc))
        raise
    return 1


def _is_capture_error(exc: Exception) -> bool:
    try:
        from sensor.capture import CaptureError
    except ImportError:
        return False
    return isinstance(exc, CaptureError)
