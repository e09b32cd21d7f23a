"""`peregrine rules parse -`: one JSON answer per JSON-string line, as editors and CI pipelines read it."""

from __future__ import annotations

import io
import subprocess
import sys

import orjson

from peregrine_cli.rules_parse import run_parse

LINES = [
    '"evt.type = execve and proc.name in (bash, \\"my sh\\")"',
    '"evt.type = execve)"',
    '"not not a"',
    '""',
    '"a.b = \\"\\\\q\\""',
    "42",
    "not json",
]
EXPECTED = [
    {"ok": True, "ast": '(evt.type = execve and proc.name in (bash, "my sh"))'},
    {"ok": False, "error": "unexpected token after 'execve', expecting 'or', 'and'", "pos": 17},
    {"ok": True, "ast": "a"},
    {"ok": False, "error": "filter input string is empty", "pos": 0},
    {"ok": False, "error": "unsupported string escape sequence: \\q", "pos": 10},
    {"ok": False, "error": "input is not a JSON string", "pos": 0},
]


def test_one_answer_per_line() -> None:
    out = io.StringIO()
    status = run_parse(io.StringIO("\n".join(LINES) + "\n\n"), out)
    answers = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert answers[:6] == EXPECTED
    assert answers[6]["ok"] is False and answers[6]["error"].startswith("input is not a JSON string")
    assert status == 1


def test_through_the_peregrine_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "peregrine_cli.main", "rules", "parse", "-"],
        input='"proc.name = cat"\n"proc.name = \'a b\'"\n', capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert [orjson.loads(line) for line in proc.stdout.splitlines()] == [
        {"ok": True, "ast": "proc.name = cat"}, {"ok": True, "ast": 'proc.name = "a b"'}]
