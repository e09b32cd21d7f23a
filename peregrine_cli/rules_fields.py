"""`peregrine rules fields`: the fields rules can use, as `falco --list` prints them, with those Peregrine never
fills marked, so a rule author knows before writing a condition that could never hold."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import orjson

UNFILLED = "[always <NA> in Peregrine: the sensor does not send it]"


def add_fields_parser(rules_subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = rules_subparsers.add_parser(
        "fields", help="list the fields conditions and outputs can use (falco --list)")
    parser.add_argument("--source", default="syscall", help="event source (default syscall; also k8s_audit)")
    parser.add_argument("--json", action="store_true", help="one JSON object per field")
    parser.set_defaults(func=_cmd_fields)
    return parser


def field_rows(source: str) -> list[dict[str, Any]]:
    from processor.engine.fields import FIELD_CLASSES, FIELDS_BY_SOURCE
    from processor.event_fields import filled

    if source not in FIELDS_BY_SOURCE:
        raise ValueError(f"unknown event source {source!r} (known: {', '.join(FIELDS_BY_SOURCE)})")
    classes = FIELD_CLASSES.items() if source == "syscall" else [(source, list(FIELDS_BY_SOURCE[source].values()))]
    return [{"class": cls, "name": f.name, "type": f.type, "desc": f.desc, "arg": f.arg,
             "filled": filled(f.name) if source == "syscall" else True}
            for cls, fields in classes for f in fields if not f.deprecated]


def _cmd_fields(args: argparse.Namespace) -> int:
    try:
        rows = field_rows(args.source)
    except ValueError as exc:
        print(f"peregrine rules fields: {exc}", file=sys.stderr)
        return 2
    if args.json:
        text = "".join(orjson.dumps(r).decode() + "\n" for r in rows)
    else:
        text = _listing(args.source, rows)
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _listing(source: str, rows: list[dict[str, Any]]) -> str:
    lines = [f"Event Sources: {source}", ""]
    current = None
    for r in rows:
        if r["class"] != current:
            current = r["class"]
            lines += ["-------------------------------", f"{'Field Class:':<30}{current}",
                      f"{'Event Sources:':<30}{source}", ""]
        name = r["name"] + ("[...]" if r["arg"] == "required" else "")
        text = " ".join(t for t in (f"{r['desc']}." if r["desc"] else "", "" if r["filled"] else UNFILLED) if t)
        lines.append((f"{name:<30}{text}" if len(name) < 30 else f"{name} {text}").rstrip())
    return "\n".join(lines) + "\n\n"
