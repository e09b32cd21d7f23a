"""fd.sip.name & co. as Falco's DNS manager gives them: the names rules compare them with, resolved forward."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from processor.dns_resolver import DnsResolver
from processor.engine.dns_names import DnsNames
from processor.engine.engine import RulesEngine
from processor.pipeline import process_batch
from processor.rules_source import build_engine
from processor.state import HostState
from settings.config import Config
from tests.pipeline.helpers import batch, event

FALCO_RULES = Path(__file__).resolve().parents[2] / "../shared/falco-rules"
T0 = 1_700_000_000_000_000_000

RULES = """
- list: api_names
  items: [kubernetes.default.svc.cluster.local, kubernetes]
- macro: to_api
  condition: fd.sip.name in (api_names)
- rule: API contacted
  desc: test
  condition: evt.type = connect and to_api and not fd.sip.name = allowed.example
  output: api (server=%fd.sip.name ip=%fd.sip)
  priority: NOTICE
- rule: Local service contacted
  desc: test
  condition: evt.type = connect and fd.sip.name = localhost
  output: local (server=%fd.sip.name)
  priority: INFO
"""


def connect(dip: str, ts: int = T0) -> dict[str, Any]:
    return event(ts, "connect", 200, comm="curl", res=0, args={
        "fd": "5", "family": "2", "sip": "10.244.1.7", "sport": "40112", "dip": dip, "dport": "443", "l4proto": "tcp",
        "fd.name": f"10.244.1.7:40112->{dip}:443"})


def engine() -> RulesEngine:
    built, report = build_engine(Config(), {"rules.yaml": RULES})
    assert built is not None, report
    return built


def test_the_engine_names_what_its_rules_compare_with() -> None:
    assert engine().dns_names() == ["kubernetes.default.svc.cluster.local", "kubernetes", "allowed.example",
                                    "localhost"]


def test_falcos_rules_name_the_miner_pools_and_the_api_server() -> None:
    if not FALCO_RULES.is_dir():
        pytest.skip("Falco's rule files are not in ../shared/falco-rules")
    texts = {p.name: p.read_text() for p in sorted(FALCO_RULES.glob("falco*_rules.yaml")) if "deprecated" not in p.name}
    built, report = build_engine(Config(), texts)
    assert built is not None, report
    built.enable_rules(True, rule="*")
    names = built.dns_names()
    assert "kubernetes.default.svc.cluster.local" in names
    assert any("pool" in n or "xmr" in n for n in names), sorted(names)[:20]


def test_an_address_a_rule_name_resolves_to_matches_and_shows_the_first_name() -> None:
    state = HostState(procs={}, users={}, containers={})
    state.dns.replace({"kubernetes.default.svc.cluster.local": ["10.96.0.1"], "kubernetes": ["10.96.0.1"],
                       "allowed.example": ["10.96.0.9"]})
    result = process_batch(batch("node-a", 1, [connect("10.96.0.1"), connect("10.0.0.5"), connect("10.96.0.9")]),
                           state, engine())
    assert [(a["rule"], a["output_fields"]["fd.sip"]) for a in result.alerts] == [("API contacted", "10.96.0.1")]
    assert result.alerts[0]["output_fields"]["fd.sip.name"] == "kubernetes.default.svc.cluster.local"
    assert "server=kubernetes.default.svc.cluster.local ip=10.96.0.1" in result.alerts[0]["output"]


def test_nothing_resolved_means_no_name_and_no_match() -> None:
    state = HostState(procs={}, users={}, containers={})
    assert process_batch(batch("node-a", 1, [connect("10.96.0.1")]), state, engine()).alerts == []


def test_the_resolver_fills_the_table_from_the_system_resolver() -> None:
    """Real resolution (getaddrinfo, /etc/hosts): localhost resolves, a reserved .invalid name never does."""
    built = engine()
    state = HostState(procs={}, users={}, containers={})
    resolver = DnsResolver(lambda: [*built.dns_names(), "peregrine-none.invalid"], state.dns)
    resolver.resolve_now()
    assert "127.0.0.1" in resolver.last["localhost"]
    assert "peregrine-none.invalid" in resolver.unresolved
    result = process_batch(batch("node-a", 1, [connect("127.0.0.1")]), state, built)
    assert [(a["rule"], a["output_fields"]["fd.sip.name"]) for a in result.alerts] == [
        ("Local service contacted", "localhost")]


def test_a_failed_refresh_keeps_the_last_addresses() -> None:
    answers: dict[str, list[str]] = {"api.example": ["10.0.0.1"]}

    def resolve(name: str) -> list[str]:  # a resolver outage after the first round
        if name not in answers:
            raise OSError("temporary failure in name resolution")
        return answers[name]

    table = DnsNames()
    resolver = DnsResolver(lambda: ["api.example"], table, resolve=resolve)
    resolver.resolve_now()
    answers.clear()
    resolver.resolve_now()
    assert table.names_of("10.0.0.1") == ["api.example"] and not resolver.unresolved


def test_of_several_names_for_one_address_an_output_shows_the_first_the_rules_wrote() -> None:
    built = engine()
    state = HostState(procs={}, users={}, containers={})
    # as cluster DNS answers: both API server names are one service address
    resolver = DnsResolver(built.dns_names, state.dns,
                           resolve=lambda name: ["10.96.0.1"] if name.startswith("kubernetes") else [])
    resolver.resolve_now()
    result = process_batch(batch("node-a", 1, [connect("10.96.0.1")]), state, built)
    assert [(a["rule"], a["output_fields"]["fd.sip.name"]) for a in result.alerts] == [
        ("API contacted", "kubernetes.default.svc.cluster.local")]
