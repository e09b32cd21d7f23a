"""Falco's official rule files load as in Falco: 0 errors, the files' counts, clean skips."""

from __future__ import annotations

from pathlib import Path

from processor.engine.engine import RulesEngine
from tests.engine.conftest import codes

STABLE = "falco_rules.yaml"
ALL = (STABLE, "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")


def _load(falco_rules: Path, *names: str) -> tuple[RulesEngine, object]:
    engine = RulesEngine()
    return engine, engine.load_rules_files([falco_rules / n for n in names])


def test_stable_alone(falco_rules: Path) -> None:
    engine, res = _load(falco_rules, STABLE)
    assert res.successful, res.as_text()  # type: ignore[attr-defined]
    assert not res.errors  # type: ignore[attr-defined]
    assert engine.counts == {"rules": 25, "macros": 87, "lists": 49}
    assert any("'container'" in n and "built-in" in n for n in res.notes)  # type: ignore[attr-defined]
    # every stable rule is restricted to event types: the sensor's syscall set is finite
    assert not engine.matches_all_event_types()
    assert {"execve", "openat", "connect"} <= engine.required_event_types()


def test_stable_incubating_sandbox_together(falco_rules: Path) -> None:
    engine, res = _load(falco_rules, *ALL)
    assert res.successful, res.as_text()  # type: ignore[attr-defined]
    assert [f.name.rsplit("/", 1)[-1] for f in res.files] == list(ALL)  # type: ignore[attr-defined]
    assert len(engine.rule_names()) == 25 + 31 + 37
    assert not engine.matches_all_event_types()


def test_deprecated_file_loads_with_evt_dir_deprecation_warnings(falco_rules: Path) -> None:
    engine, res = _load(falco_rules, "falco-deprecated_rules.yaml")
    assert res.successful, res.as_text()  # type: ignore[attr-defined]
    assert engine.counts == {"rules": 4, "macros": 6, "lists": 9}
    assert set(codes(res)) == {"LOAD_DEPRECATED_ITEM"}  # type: ignore[arg-type]
    assert all(w.detail == "field 'evt.dir'" for w in res.warnings)  # type: ignore[attr-defined]


def test_k8s_audit_file_loads_or_is_skipped_cleanly(falco_rules: Path) -> None:
    engine, res = _load(falco_rules, "k8s_audit_rules.yaml")
    assert res.successful, res.as_text()  # type: ignore[attr-defined]
    assert not res.errors  # type: ignore[attr-defined]
    assert set(codes(res)) <= {"LOAD_UNKNOWN_SOURCE", "LOAD_UNUSED_MACRO", "LOAD_UNUSED_LIST"}  # type: ignore[arg-type]
    names = engine.rule_names()
    assert len(names) in (0, 48)
    # k8saudit/json plugin requirements are reported, not fatal
    assert any("k8saudit" in n for n in res.notes)  # type: ignore[attr-defined]
    # no k8s_audit rule asks the sensor for syscalls
    assert engine.required_event_types() == set()


def test_k8s_audit_rules_skipped_when_source_unavailable(falco_rules: Path) -> None:
    from processor.engine.engine import default_sources

    engine = RulesEngine(sources={"syscall": default_sources()["syscall"]})
    res = engine.load_rules_files([falco_rules / "k8s_audit_rules.yaml"])
    assert res.successful, res.as_text()
    assert codes(res).count("LOAD_UNKNOWN_SOURCE") == 48
    assert res.warnings[0].message.startswith("Unknown source k8s_audit, skipping")
    assert engine.rule_names() == []


def test_everything_in_one_load(falco_rules: Path) -> None:
    engine, res = _load(falco_rules, *ALL, "falco-deprecated_rules.yaml", "k8s_audit_rules.yaml")
    assert res.successful, res.as_text()  # type: ignore[attr-defined]


def test_stable_rule_order_is_file_order(falco_rules: Path) -> None:
    engine, _ = _load(falco_rules, STABLE)
    text = (falco_rules / STABLE).read_text()
    in_file = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("- rule:")]
    assert engine.rule_names() == in_file
