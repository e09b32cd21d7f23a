"""The rule unit-test runner: what a rule author sees from `peregrine rules test` for passing and broken cases."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from peregrine_cli.rules_test import add_test_parser
from processor.engine.ruletest import CaseFileError, load_case_file, run_case_files

RULES = """
- macro: opened_for_read
  condition: (evt.type in (open, openat) and evt.is_open_read=true)
- rule: Shadow read
  desc: test rule
  condition: opened_for_read and fd.name=/etc/shadow and not proc.name in (sshd)
  output: shadow read (file=%fd.name process=%proc.name)
  priority: WARNING
- rule: Any curl
  desc: test rule
  condition: evt.type=execve and proc.name=curl
  output: curl (command=%proc.cmdline)
  priority: NOTICE
"""


def _write(tmp_path: Path, cases: str, name: str = "cases.yaml") -> Path:
    (tmp_path / "my_rules.yaml").write_text(RULES)
    path = tmp_path / name
    path.write_text(cases)
    return path


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_test_parser(parser.add_subparsers())
    args = parser.parse_args(["test", *argv])
    return int(args.func(args))


def test_passing_and_failing_cases_are_reported_with_a_summary(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, """
rules: [my_rules.yaml]
base_event: {evt.type: openat, evt.is_open_read: true, proc.name: cat}
cases:
  - name: cat reads shadow
    event: {fd.name: /etc/shadow}
    expect: [Shadow read]
    expect_not: [Any curl]
  - name: sshd is trusted
    event: {fd.name: /etc/shadow, proc.name: sshd}
    expect_not: Shadow read
  - name: wrong expectation
    events: [{fd.name: /etc/hosts}, {evt.type: execve, proc.name: curl}]
    expect: [Shadow read]
    expect_not: [Any curl]
""")
    assert _cli(str(tmp_path)) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("PASS ") and out[0].endswith("cases.yaml:5:5 cat reads shadow")
    assert out[1].startswith("PASS ")
    assert out[2].startswith("FAIL ") and "wrong expectation" in out[2]
    assert "expected to fire but did not: ['Shadow read']" in out[2]
    assert "fired but must not: ['Any curl']" in out[2]
    assert out[-1] == "2 passed, 1 failed"


def test_all_passing_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case_file = _write(tmp_path, """
rules: my_rules.yaml
cases:
  - name: curl
    event: {evt.type: execve, proc.name: curl}
    expect: [Any curl]
""")
    assert _cli(str(case_file)) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 passed, 0 failed"


def test_null_removes_a_base_field_so_the_check_on_it_is_false(tmp_path: Path) -> None:
    _write(tmp_path, """
rules: [my_rules.yaml]
base_event: {evt.type: openat, evt.is_open_read: true, fd.name: /etc/shadow, proc.name: cat}
cases:
  - name: without proc.name, "not proc.name in (sshd)" is true
    event: {proc.name: null}
    expect: [Shadow read]
  - name: without fd.name the rule cannot match
    event: {fd.name: null}
    expect_not: [Shadow read]
""")
    report = run_case_files([tmp_path])
    assert [r.passed for r in report.results] == [True, True]
    assert "proc.name" not in report.results[0].case.events[0]


def test_unknown_rule_name_fails_instead_of_passing_vacuously(tmp_path: Path) -> None:
    _write(tmp_path, """
rules: [my_rules.yaml]
cases:
  - name: typo in expect_not
    event: {evt.type: execve, proc.name: ls}
    expect_not: [Any curll]
""")
    (result,) = run_case_files([tmp_path]).results
    assert not result.passed
    assert "no rule named 'Any curll' is loaded" in result.line()


def test_rules_that_do_not_load_fail_every_case_with_the_load_report(tmp_path: Path) -> None:
    (tmp_path / "bad_rules.yaml").write_text("- rule: x\n  desc: d\n  condition: evt.type=open and\n"
                                             "  output: o\n  priority: INFO\n")
    (tmp_path / "cases.yaml").write_text("""
rules: [bad_rules.yaml]
cases:
  - {name: one, event: {evt.type: open}, expect_not: [x]}
  - {name: two, event: {evt.type: open}, expect_not: [x]}
""")
    report = run_case_files([tmp_path])
    assert report.failed == 2
    assert all("rules did not load" in r.line() and "LOAD_ERR_COMPILE_CONDITION" in r.line() for r in report.results)


def test_relative_rules_path_falls_back_to_the_project_root(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "r.yaml").write_text(RULES)
    case_dir = tmp_path / "tests" / "rules"
    case_dir.mkdir(parents=True)
    (case_dir / "c.yaml").write_text("""
rules: [shared/r.yaml]
cases:
  - {name: curl, event: {evt.type: execve, proc.name: curl}, expect: [Any curl]}
""")
    (case,) = load_case_file(case_dir / "c.yaml")
    assert case.rules_files == ((tmp_path / "shared" / "r.yaml").resolve(),)
    assert run_case_files([case_dir]).ok


def test_default_rules_are_used_without_a_rules_key(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("""
cases:
  - name: root cat /etc/shadow
    event: {evt.type: openat, evt.is_open_read: true, fd.num: 3, fd.name: /etc/shadow, proc.name: cat}
    expect: [Credential File Read by Untrusted Program]
""")
    assert run_case_files([tmp_path]).ok


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cases:\n  - name: x\n    expect: [a]\n", "c.yaml:2:5: case 'x' needs exactly one of 'event' or 'events'"),
        ("cases:\n  - name: x\n    event: {a.b: 1}\n", "c.yaml:2:5: case 'x' needs 'expect' and/or 'expect_not'"),
        ("cases:\n  - name: x\n    event: [1]\n    expect: [a]\n", "c.yaml:2:5: an event must be a mapping"),
        ("cases:\n  - name: x\n    evnt: {}\n", "c.yaml:2:5: unknown case key(s) ['evnt']"),
        ("cases: [\n", "c.yaml:2:1: invalid YAML"),
        ("rulez: []\ncases: []\n", "c.yaml:1:1: unknown top-level key(s) ['rulez']"),
    ],
)
def test_malformed_case_files_name_the_place(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(CaseFileError) as err:
        load_case_file(path)
    assert str(err.value).startswith(str(tmp_path / message.split(":", 1)[0]) + ":" + message.split(":", 1)[1])


def test_a_malformed_case_file_is_a_failure_not_a_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.yaml").write_text("cases:\n  - name: x\n    expect: [a]\n")
    assert _cli(str(tmp_path)) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "needs exactly one of 'event' or 'events'" in out and "0 passed, 1 failed" in out


def test_missing_path_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(str(tmp_path / "nope")) == 1
    assert "no such file or directory" in capsys.readouterr().out
