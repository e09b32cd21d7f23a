"""`peregrine rules parse -`: conditions in (JSON strings, one per line), canonical syntax trees out.

For editors and CI: each line gets one JSON answer, `{"ok": true, "ast": "<libsinsp as_string>"}` or
`{"ok": false, "error": "...", "pos": N}`. Parse only: field names are not checked here.
"""

from __future__ import annotations

import argparse
import sys
from typing import IO, Any

import orjson

from processor.engine.ast import as_string
from processor.engine.parser import ConditionSyntaxError, parse_condition


def parse_line(line: str) -> dict[str, Any]:
    try:
        text = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return {"ok": False, "error": f"input is not a JSON string: {exc}", "pos": 0}
    if not isinstance(text, str):
        return {"ok": False, "error": "input is not a JSON string", "pos": 0}
    try:
        return {"ok": True, "ast": as_string(parse_condition(text))}
    except ConditionSyntaxError as exc:
        return {"ok": False, "error": exc.message, "pos": exc.pos}


def run_parse(stream: IO[str], out: IO[str]) -> int:
    failed = False
    for line in stream:
        if not line.strip():
            continue
        answer = parse_line(line)
        failed = failed or not answer["ok"]
        out.write(orjson.dumps(answer).decode() + "\n")
        out.flush()
    return 1 if failed else 0


def _cmd_parse(args: argparse.Namespace) -> int:
    if args.input == "-":
        return run_parse(sys.stdin, sys.stdout)
    with open(args.input, encoding="utf-8") as stream:
        return run_parse(stream, sys.stdout)


def add_parse_parser(rules_subparsers: Any) -> argparse.ArgumentParser:
    """Adds `parse` under `peregrine rules`; exit status 1 when some condition did not parse."""
    parser: argparse.ArgumentParser = rules_subparsers.add_parser(
        "parse", help="parse conditions (JSON strings, one per line) into libsinsp's canonical form")
    parser.add_argument("input", nargs="?", default="-", help="file of JSON strings, or - for stdin (default)")
    parser.set_defaults(func=_cmd_parse)
    return parser
