"""Peregrine's own default rule files, shipped as package data and loaded when no --rules is given."""

from __future__ import annotations

from pathlib import Path

RULES_DIR = Path(__file__).resolve().parent


def default_rules_files() -> list[Path]:
    """Default rule files in load order (alphabetical, as Falco orders a rules directory)."""
    return sorted(p for p in RULES_DIR.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
