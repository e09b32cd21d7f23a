"""outputs.yaml: which outputs run, and for each its filters, enrichment, delivery policy and own options.

Framework keys are listed in OutputSpec; every other key of an output entry belongs to the output type
(e.g. `webhookurl` for slack) and is checked by that output's options dataclass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from outputs import priority
from outputs.confbuild import Duration, build
from settings.config import ConfigError


@dataclass
class NameFilter:
    """Glob patterns (fnmatch); an empty `include` admits everything."""

    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter; past `give_up_after` the alert goes to the dead-letter topic."""

    initial_backoff: Duration = 0.5
    max_backoff: Duration = 30.0
    give_up_after: Duration = 600.0


@dataclass
class AggregateSpec:
    """Identical alerts (same rule, hostname and `fields`) within `window` become one alert with a count."""

    window: Duration = 0.0
    fields: list[str] = field(default_factory=list)


@dataclass
class OutputSpec:
    name: str = ""
    type: str = ""
    enabled: bool = True
    minimum_priority: str = "debug"
    rules: NameFilter = field(default_factory=NameFilter)
    tags: NameFilter = field(default_factory=NameFilter)
    sources: NameFilter = field(default_factory=NameFilter)
    customfields: dict[str, Any] = field(default_factory=dict)
    customtags: list[str] = field(default_factory=list)
    templatedfields: dict[str, str] = field(default_factory=dict)
    dedup_window: Duration = 600.0
    aggregate: AggregateSpec = field(default_factory=AggregateSpec)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    batch_size: int = 500
    group_id: str = ""
    dead_letter_topic: str = ""
    start_from: str = "earliest"
    options: dict[str, Any] = field(default_factory=dict)
    where: str = ""

    def consumer_group(self) -> str:
        return self.group_id or f"peregrine-outputs-{self.name}"

    def dlq_topic(self, alerts_topic: str) -> str:
        return self.dead_letter_topic or f"{alerts_topic}.dlq.{self.name}"


@dataclass
class MetricsSpec:
    address: str = "127.0.0.1"
    port: int = 8767  # 0 = no /metrics endpoint


@dataclass
class OutputsSpec:
    metrics: MetricsSpec = field(default_factory=MetricsSpec)
    customfields: dict[str, Any] = field(default_factory=dict)
    customtags: list[str] = field(default_factory=list)
    templatedfields: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    session_timeout_ms: int = 10_000
    # Static group membership (`{name}` = output name): a restarted connector takes its partitions back at once.
    instance_id: str = ""
    outputs: list[OutputSpec] = field(default_factory=list)


_FRAMEWORK_KEYS = {f.name for f in fields(OutputSpec)} - {"options", "where"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def parse_outputs(data: Any, where: str) -> OutputsSpec:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with an 'outputs' list")
    raw_outputs = data.get("outputs") or []
    top = {k: v for k, v in data.items() if k != "outputs"}
    spec = build(OutputsSpec, top, where)
    if not isinstance(raw_outputs, list):
        raise ConfigError(f"{where}.outputs: expected a list")
    seen: set[str] = set()
    for i, entry in enumerate(raw_outputs):
        out = parse_output({**spec.defaults, **(entry or {})}, f"{where}.outputs[{i}]", spec)
        if out.name in seen:
            raise ConfigError(f"{out.where}: duplicate output name '{out.name}' (names pick consumer groups and DLQs)")
        seen.add(out.name)
        if out.enabled:
            spec.outputs.append(out)
    return spec


def parse_output(entry: dict[str, Any], where: str, spec: OutputsSpec) -> OutputSpec:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping")
    framework = {k: v for k, v in entry.items() if k in _FRAMEWORK_KEYS}
    options = {k: v for k, v in entry.items() if k not in _FRAMEWORK_KEYS}
    out = build(OutputSpec, framework, where)
    if not out.type:
        raise ConfigError(f"{where}: missing 'type' (stdout, file, syslog, webhook, slack, teams, ...)")
    out.name = out.name or out.type
    out.where = f"{where} ({out.name})"
    if not _NAME.match(out.name):
        raise ConfigError(f"{out.where}: name must be letters, digits, '.', '_' or '-'")
    if not priority.is_known(out.minimum_priority):
        raise ConfigError(f"{out.where}.minimum_priority: unknown priority '{out.minimum_priority}' "
                          f"(one of {', '.join(priority.PRIORITIES)})")
    if out.start_from not in ("earliest", "latest"):
        raise ConfigError(f"{out.where}.start_from: 'earliest' or 'latest', got '{out.start_from}'")
    if out.batch_size < 1:
        raise ConfigError(f"{out.where}.batch_size: must be at least 1")
    out.customfields = {**spec.customfields, **out.customfields}
    out.customtags = [*spec.customtags, *out.customtags]
    out.templatedfields = {**spec.templatedfields, **out.templatedfields}
    out.options = options
    return out


def load_outputs(path: str | Path) -> OutputsSpec:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read outputs configuration: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    return parse_outputs(data or {}, str(path))
