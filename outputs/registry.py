"""Output types by name, imported on demand so an output's dependencies load only when it is configured."""

from __future__ import annotations

import importlib
from typing import Any

from outputs.base import Output
from outputs.confbuild import build
from outputs.config import OutputSpec
from settings.config import ConfigError

TYPES = {
    "stdout": "outputs.stdout:StdoutOutput",
    "file": "outputs.file:FileOutput",
    "syslog": "outputs.syslog:SyslogOutput",
    "webhook": "outputs.webhook:WebhookOutput",
    "slack": "outputs.slack:SlackOutput",
    "teams": "outputs.teams:TeamsOutput",
    "elasticsearch": "outputs.elasticsearch:ElasticsearchOutput",
    "opensearch": "outputs.elasticsearch:ElasticsearchOutput",
    "splunk": "outputs.splunk:SplunkOutput",
    "sentinel": "outputs.sentinel:SentinelOutput",
    "loki": "outputs.loki:LokiOutput",
    "kafka": "outputs.kafka_forward:KafkaForwardOutput",
}


def output_class(type_name: str, where: str = "outputs") -> type[Output]:
    target = TYPES.get(type_name)
    if target is None:
        raise ConfigError(f"{where}: unknown output type '{type_name}' (one of {', '.join(sorted(TYPES))})")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def create(spec: OutputSpec) -> Output:
    """Build an output, checking its own options strictly (a typo names the file, entry and key)."""
    cls = output_class(spec.type, spec.where)
    options: Any = build(cls.Options, spec.options, spec.where)
    check = getattr(options, "check", None)
    if check is not None:
        check(spec.where)
    return cls(spec.name, options)
