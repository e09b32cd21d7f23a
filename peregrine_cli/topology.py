"""`peregrine topology`: the one topic list, as Kafka admin calls, Bicep for Event Hubs, or docs; or applied."""

from __future__ import annotations

import argparse
import sys

from peregrine_cli.common import config_from_args, fail
from schemas.topology import (
    EVENTHUBS_TIERS,
    check_fits,
    render_admin,
    render_bicep,
    render_markdown,
    topology,
)
from settings.config import Config


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("topology", help="print every topic as Kafka admin calls, Bicep or Markdown")
    parser.add_argument("--format", choices=["admin", "bicep", "markdown"], default="markdown")
    parser.add_argument("--bootstrap", help="bootstrap server written into the admin calls (default: kafka.bootstrap_servers)")
    parser.add_argument("--tier", choices=sorted(EVENTHUBS_TIERS), default="standard",
                        help="Event Hubs tier the topology must fit (default: standard)")
    parser.add_argument("--apply", action="store_true",
                        help="create the missing topics on kafka.bootstrap_servers with the admin API instead of printing")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    topics = topology(cfg)
    tier = EVENTHUBS_TIERS[args.tier]
    problems = check_fits(topics, tier)
    if problems:
        fail(f"the topology does not fit Event Hubs {tier.name}: " + "; ".join(problems))
    if args.apply:
        return _apply(cfg)
    if args.format == "admin":
        sys.stdout.write(render_admin(topics, args.bootstrap or cfg.kafka.bootstrap_servers,
                                      cfg.kafka.replication_factor))
    elif args.format == "bicep":
        sys.stdout.write(render_bicep(topics, tier))
    else:
        sys.stdout.write(render_markdown(topics, tier))
    return 0


def _apply(cfg: Config) -> int:
    from deploy.topics import TopicCreationError, create_topics

    try:
        created = create_topics(cfg)
    except TopicCreationError as exc:
        fail(str(exc))
    print(f"topology: created {len(created)} topic(s){': ' + ', '.join(created) if created else ''}")
    return 0
