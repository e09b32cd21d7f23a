"""Shared helpers for engine tests: load rules from text, Falco's official files as test data."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.engine.engine import RulesEngine
from processor.engine.load_result import LoadResult

FALCO_RULES = Path(__file__).resolve().parents[2] / "../shared/falco-rules"


def load(text: str, name: str = "rules.yaml", **kw: object) -> tuple[RulesEngine, LoadResult]:
    engine = RulesEngine(**kw)  # type: ignore[arg-type]
    return engine, engine.load_rules_content([(name, text)])


def compiled(engine: RulesEngine, rule: str) -> str:
    found = engine.describe(rule)
    assert found is not None, f"rule {rule!r} not loaded"
    return found.condition_compiled


def messages(result: LoadResult, kind: str = "errors") -> list[str]:
    return [m.message for m in getattr(result, kind)]


def codes(result: LoadResult, kind: str = "warnings") -> list[str]:
    return [m.code.name for m in getattr(result, kind)]


@pytest.fixture(scope="session")
def falco_rules() -> Path:
    if not FALCO_RULES.is_dir():
        pytest.skip("Falco's rule files are not in ../shared/falco-rules")
    return FALCO_RULES
