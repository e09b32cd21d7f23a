"""`peregrine hunt --rules FILE... --since 24h [--hosts ...]`: check rules against the events Kafka still retains.

Findings go to the hunt results topic and to stdout (one Falco JSON alert per line, or Falco's text line with
`--text`); the progress bar and the summary go to stderr, so stdout stays machine-readable.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from peregrine_cli.common import config_from_args, fail, require_kafka


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("hunt", help="run rules over the events still retained in Kafka (retro-hunt)")
    parser.add_argument("--rules", nargs="+", required=True, metavar="FILE", help="rule files or directories")
    parser.add_argument("--since", default="24h", help="how far back: 90s, 30m, 24h, 7d (default 24h)")
    parser.add_argument("--hosts", nargs="+", metavar="HOST", help="only these hosts")
    parser.add_argument("--text", action="store_true", help="print Falco's text line instead of JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from processor.hunt import HuntError, HuntPlan, parse_since, run_hunt

    cfg = config_from_args(args)
    try:
        since_s = parse_since(args.since)
    except ValueError as exc:
        fail(str(exc), 2)
    require_kafka(cfg)
    err = Console(stderr=True)

    def on_finding(alert: dict[str, Any]) -> None:
        line = alert["output"] if args.text else orjson.dumps(alert, option=orjson.OPT_SORT_KEYS).decode()
        sys.stdout.write(line + "\n")  # looked up per call: rich redirects stdout above the bar on a terminal

    with Progress(TextColumn("hunting {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("records"), TimeRemainingColumn(), console=err, transient=False) as progress:
        task = progress.add_task(cfg.kafka.topics.events, total=None)

        def on_plan(plan: HuntPlan) -> None:
            progress.update(task, total=plan.records)

        try:
            summary = run_hunt(cfg, args.rules, since_s, set(args.hosts) if args.hosts else None,
                               on_finding=on_finding, on_plan=on_plan,
                               on_progress=lambda n: progress.advance(task, n))
        except HuntError as exc:
            fail(str(exc))
            raise  # unreachable
    sys.stdout.flush()
    for line in summary.undecodable[:10]:
        err.print(f"undecodable record skipped: {line}", markup=False, highlight=False)
    err.print(f"hunt: {summary.records} records, {summary.events} events, {summary.findings} findings "
              f"written to {cfg.kafka.topics.hunt}"
              + (f", {len(summary.undecodable)} undecodable records" if summary.undecodable else "")
              + (f", {summary.engine_failures} events made the engine raise" if summary.engine_failures else "")
              + (f"; {summary.warmup_events} events before the window rebuilt process state (rules not run)"
                 if summary.warmup_events else ""),
              markup=False, highlight=False)
    return 0
