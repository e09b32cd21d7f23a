"""Rule unit tests as users run them (`peregrine rules test`): our default rules and Falco's stable rules.

tests/rules/peregrine holds cases for Peregrine's default rules, tests/rules/falco_stable field-map cases
for every rule of Falco's falco_rules.yaml (loaded from ../shared/falco-rules). Every rule needs at least
one case that must fire it and one that must not.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from processor.engine.engine import RulesEngine
from processor.engine.ruletest import RuleCase, discover_case_files, load_case_file, run_case_files
from processor.rules import default_rules_files

REPO = Path(__file__).resolve().parents[2]
CASES = REPO / "tests" / "rules"
FALCO_STABLE = (REPO / ".." / "shared" / "falco-rules" / "falco_rules.yaml").resolve()
CONTEXT_FIELDS = (
    "evt_type=%evt.type user=%user.name user_uid=%user.uid user_loginuid=%user.loginuid process=%proc.name "
    "proc_exepath=%proc.exepath parent=%proc.pname command=%proc.cmdline terminal=%proc.tty"
)


def _cases(directory: Path) -> list[RuleCase]:
    return [c for f in discover_case_files([directory]) for c in load_case_file(f)]


def _loaded(files: list[Path]) -> RulesEngine:
    engine = RulesEngine(rule_matching="all")
    result = engine.load_rules_files(files)
    assert result.successful, result.as_text()
    return engine


def _assert_coverage(cases: list[RuleCase], rule_names: list[str]) -> None:
    positive = {r for c in cases for r in c.expect}
    negative = {r for c in cases for r in c.expect_not}
    no_pos = [r for r in rule_names if r not in positive]
    no_neg = [r for r in rule_names if r not in negative]
    assert not no_pos and not no_neg, f"rules without a firing case: {no_pos}; without a non-firing case: {no_neg}"


@pytest.mark.parametrize("directory", ["peregrine", "falco_stable"])
def test_rule_cases_pass(directory: str) -> None:
    report = run_case_files([CASES / directory])
    failing = "\n".join(r.line() for r in report.results if not r.passed)
    assert report.results, f"no cases found under {CASES / directory}"
    assert report.failed == 0, f"{report.summary()}\n{failing}"


def test_every_default_rule_has_positive_and_negative_cases() -> None:
    _assert_coverage(_cases(CASES / "peregrine"), _loaded(default_rules_files()).rule_names())


def test_every_stable_falco_rule_has_positive_and_negative_cases() -> None:
    cases = _cases(CASES / "falco_stable")
    assert {c.rules_files for c in cases} == {(FALCO_STABLE,)}
    names = _loaded([FALCO_STABLE]).rule_names()
    assert len(names) == 25
    _assert_coverage(cases, names)


def test_default_rules_load_cleanly_and_follow_house_style() -> None:
    engine = RulesEngine()
    result = engine.load_rules_files(default_rules_files())
    assert result.successful and not result.warnings, result.as_text()
    assert engine.counts["rules"] >= 30
    for name in engine.rule_names():
        rule = engine.describe(name)
        assert rule.event_types, f"{name}: every default rule must restrict evt.type"
        assert any(re.fullmatch(r"T\d{4}(\.\d{3})?", t) for t in rule.tags), f"{name}: no MITRE technique tag"
        assert any(t.startswith("mitre_") for t in rule.tags), f"{name}: no mitre_* tactic tag"
        assert rule.desc.strip(), f"{name}: no desc"
        assert CONTEXT_FIELDS in rule.output.text, f"{name}: output lacks Falco's context fields"


def test_default_rules_load_together_with_falco_rules() -> None:
    """Our names never collide with Falco's, so loading both changes neither."""
    falco = REPO / ".." / "shared" / "falco-rules"
    files = [falco / "falco_rules.yaml", falco / "falco-incubating_rules.yaml", falco / "falco-sandbox_rules.yaml"]
    ours = _loaded(default_rules_files()).rule_names()
    both = _loaded([*files, *default_rules_files()]).rule_names()
    assert set(ours) <= set(both) and len(both) == len(set(both)) == len(_loaded(files).rule_names()) + len(ours)


def test_root_cat_of_etc_shadow_alerts_with_process_and_file() -> None:
    """The pipeline's smoke test: `cat /etc/shadow` as root, as the processor would present the openat."""
    engine = RulesEngine()
    assert engine.load_rules_files(default_rules_files()).successful
    event = {
        "evt.type": "openat", "evt.is_open_read": True, "evt.is_open_write": False, "evt.arg.flags": "O_RDONLY",
        "evt.rawres": 3, "fd.num": 3, "fd.typechar": "f", "fd.name": "/etc/shadow", "fd.directory": "/etc",
        "proc.name": "cat", "proc.exepath": "/usr/bin/cat", "proc.cmdline": "cat /etc/shadow", "proc.pname": "bash",
        "proc.aname": ["bash", "sudo", "bash", "sshd"], "user.name": "root", "user.uid": 0, "user.loginuid": 1000,
        "container.id": "host", "proc.tty": 34816,
    }
    matches = engine.process(event)
    assert [m.rule for m in matches] == ["Credential File Read by Untrusted Program"]
    alert = engine.format_alert(matches[0], event, "node-1", 7, 1_732_800_000_000_000_000)
    assert alert["output_fields"]["proc.name"] == "cat"
    assert alert["output_fields"]["fd.name"] == "/etc/shadow"
    assert alert["priority"] == "Warning"
    assert "T1003.008" in alert["tags"]


def test_default_rules_fire_on_the_processors_own_fields_for_cat_etc_shadow() -> None:
    """Same smoke test, with the fields computed by the processor from wire events and its thread table."""
    from processor.event_fields import EventFields
    from processor.state import HostState
    from tests.pipeline.helpers import event, proc_info

    t0, host = 1_700_000_000_000_000_000, "node-a"
    state = HostState(procs={}, users={}, containers={})
    for ev in [
        event(t0, "snapshot", 1, comm="systemd", proc=proc_info("/usr/lib/systemd/systemd", ["/sbin/init"])),
        event(t0, "snapshot", 100, ppid=1, comm="bash", proc=proc_info("/usr/bin/bash", ["-bash"])),
        event(t0 + 1, "clone", 100, comm="bash", res=200, args={"child_pid": "200", "child_tid": "200"}),
        event(t0 + 2, "execve", 200, ppid=100, uid=0, comm="cat", proc=proc_info("/usr/bin/cat", ["cat", "/etc/shadow"])),
    ]:
        state.apply(host, ev)
    opened = event(t0 + 3, "openat", 200, uid=0, comm="cat", res=3,
                   args={"name": "/etc/shadow", "flags": "524288", "dirfd": "-100"})
    fields = EventFields(opened, host, state, seq=4)
    engine = RulesEngine()
    assert engine.load_rules_files(default_rules_files()).successful
    (match,) = engine.process(fields)
    alert = engine.format_alert(match, fields, host, 4, t0 + 3)
    assert alert["rule"] == "Credential File Read by Untrusted Program"
    assert alert["output_fields"]["proc.name"] == "cat" and alert["output_fields"]["fd.name"] == "/etc/shadow"
    assert alert["output_fields"]["user.name"] == "root"
