"""`peregrine rules test DIR...`: run rule unit tests (YAML field-map cases) and exit 0 iff all pass."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_test_parser(rules_subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = rules_subparsers.add_parser(
        "test",
        help="run rule unit tests: YAML cases of field-map events and the rules expected to (not) fire",
        description="Run rule unit tests. Each case file lists field-map events and the rules that must "
        "fire (expect) or must not fire (expect_not); see processor/engine/ruletest.py for the format.",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="DIR", help="case files or directories of them")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only failing cases and the summary")
    parser.set_defaults(func=run_tests)
    return parser


def run_tests(args: argparse.Namespace) -> int:
    from processor.engine.ruletest import CaseResult, run_case_files

    for path in args.paths:
        if not path.exists():
            print(f"{path}: no such file or directory")
            return 1

    def show(result: CaseResult) -> None:
        if not (args.quiet and result.passed):
            print(result.line(), flush=True)

    report = run_case_files(args.paths, on_result=show)
    print(report.summary())
    return 0 if report.ok else 1
