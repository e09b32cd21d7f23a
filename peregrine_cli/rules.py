"""`peregrine rules`: validate Falco rule files, evaluate rules on field-map events (and parse/test).

`validate` prints Falco's report (`falco -V`): per file "Ok" or the errors, warnings on stderr, plus the
counts of rules, macros and lists; `--json` prints Falco's JSON report. `eval` prints one Falco JSON
alert per match for each line of a JSONL file of field maps ({"evt.type": "openat", ...}).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import orjson


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("rules", help="validate and try Falco rule files")
    parser.set_defaults(func=lambda _args: (parser.print_help(), 2)[1])
    sub = parser.add_subparsers(dest="rules_command", metavar="SUBCOMMAND")

    validate = sub.add_parser("validate", help="load rule files and print Falco's load report")
    validate.add_argument("files", nargs="+", metavar="FILE", help="rule files or directories, in load order")
    validate.add_argument("--json", action="store_true", help="print Falco's JSON report")
    validate.set_defaults(func=cmd_validate)

    ev = sub.add_parser("eval", help="print a Falco JSON alert per rule match on field-map events")
    ev.add_argument("--rules", nargs="+", metavar="FILE", help="rule files (default: Peregrine's default rules)")
    ev.add_argument("--events", required=True, metavar="FILE.jsonl", help="one JSON field map per line; - = stdin")
    ev.add_argument("--rule-matching", choices=("first", "all"), default="first",
                    help="Falco's rule_matching: first match per event, or all")
    ev.add_argument("--hostname", help="alert hostname (default: $FALCO_HOSTNAME or this host's name)")
    ev.set_defaults(func=cmd_eval)

    publish = sub.add_parser("publish", help="validate rule files, then publish them to every running worker")
    publish.add_argument("files", nargs="+", metavar="FILE", help="rule files (published under their base name)")
    publish.add_argument("--base", nargs="+", metavar="FILE",
                         help="the workers' local rules to validate against (default: rules_files or the defaults)")
    publish.set_defaults(func=cmd_publish)

    for module, hook in (("peregrine_cli.rules_parse", "add_parse_parser"), ("peregrine_cli.rules_test", "add_test_parser"),
                         ("peregrine_cli.rules_fields", "add_fields_parser")):
        try:
            mod = __import__(module, fromlist=[hook])
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        getattr(mod, hook)(sub)


def _engine(rule_matching: str = "first") -> Any:
    from processor.engine.engine import RulesEngine

    return RulesEngine(rule_matching=rule_matching)


def cmd_validate(args: argparse.Namespace) -> int:
    engine = _engine()
    result = engine.load_rules_files(args.files)
    counts = {"rules": result.rules, "macros": result.macros, "lists": result.lists}
    if args.json:
        doc = result.as_json()
        doc["counts"] = counts
        doc["notes"] = result.notes
        sys.stdout.write(orjson.dumps(doc).decode() + "\n")
        return 0 if result.successful else 1
    contents = result.contents()
    lines = []
    for fres in result.files:
        if not fres.successful or not fres.has_warnings:
            lines.append(fres.as_text(contents).rstrip("\n"))
        else:
            lines.append(f"{fres.name}: Ok, with warnings")
            sys.stderr.write(fres.as_text(contents))
    print("\n".join(lines))
    if result.successful:
        print(f"Loaded {counts['rules']} rules, {counts['macros']} macros, {counts['lists']} lists")
    for note in result.notes:
        print(f"note: {note}")
    return 0 if result.successful else 1


def _event_time(event: dict[str, Any]) -> int:
    for key in ("evt.rawtime", "evt.time"):
        value = event.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return time.time_ns()


def cmd_eval(args: argparse.Namespace) -> int:
    engine = _engine(args.rule_matching)
    if args.rules:
        files: list[str | Path] = list(args.rules)
    else:
        from processor.rules import default_rules_files

        files = list(default_rules_files())
    result = engine.load_rules_files(files)
    if not result.successful:
        sys.stderr.write(result.as_text())
        return 1
    hostname = args.hostname or os.environ.get("FALCO_HOSTNAME") or socket.gethostname()
    name = "<stdin>" if args.events == "-" else args.events
    stream = sys.stdin if args.events == "-" else open(args.events, encoding="utf-8")  # noqa: SIM115
    status = 0
    out = sys.stdout
    try:
        for lineno, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                sys.stderr.write(f"{name}:{lineno}: not a JSON object: {exc}\n")
                status = 1
                continue
            if not isinstance(event, dict):
                sys.stderr.write(f"{name}:{lineno}: not a JSON object (a field map)\n")
                status = 1
                continue
            seq = event.get("evt.num") if isinstance(event.get("evt.num"), int) else lineno
            for match in engine.process(event):
                alert = engine.format_alert(match, event, hostname=hostname, seq=seq, time_ns=_event_time(event))
                out.write(orjson.dumps(alert, option=orjson.OPT_SORT_KEYS).decode() + "\n")
    finally:
        if stream is not sys.stdin:
            stream.close()
    return status


def cmd_publish(args: argparse.Namespace) -> int:
    """Validate like a worker would (published files overlaid on its local rules); refuse with Falco's report."""
    from peregrine_cli.common import config_from_args, require_kafka
    from processor.rules_source import publish_rules, validate_for_publish

    cfg = config_from_args(args)
    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        sys.stderr.write(f"peregrine: error: not a file: {', '.join(missing)}\n")
        return 2
    ok, report = validate_for_publish(cfg, list(args.files), args.base)
    if not ok:
        sys.stderr.write(report.rstrip("\n") + "\n")
        sys.stderr.write("peregrine: error: rules refused, nothing published\n")
        return 1
    require_kafka(cfg)
    sent = publish_rules(cfg, list(args.files))
    print(f"published {', '.join(sent)} to {cfg.kafka.topics.rules}")
    return 0
