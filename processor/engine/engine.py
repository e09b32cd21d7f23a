"""The rules engine facade: load Falco rule files, evaluate events, format alerts.

A pure library (no Kafka, Faust or network): the processor, the CLI and the tests use the same object.
Loading mirrors Falco: every file feeds one collector and each file triggers a full recompile; the first
file with errors stops the load, and a failed load leaves the previously loaded rules active.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from processor.engine.alert import alert_text, format_alert
from processor.engine.collector import SYSCALL_SOURCE, Collector, FieldCheck, PluginVersionInfo, semver_str
from processor.engine.compiler import CompileConfig, CompiledRuleset, Compiler, SourceSupport
from processor.engine.dns_names import names_in
from processor.engine.formatter import AppendOutput, OutputConfig
from processor.engine.load_result import Context, ErrorCode, FileResult, LoadResult
from processor.engine.priority import Priority, parse_priority
from processor.engine.reader import Reader
from processor.engine.ruleset import Match, Ruleset

BUILTIN_PLUGINS = {"container": "0.4.0"}
"""Plugins whose fields Peregrine has built in, with the plugin version they stand for."""

_TRANSFORMER_CALL = re.compile(r"^\s*([a-z0-9]+)\s*\((.*)\)\s*$", re.S)


def field_check(source: str) -> FieldCheck:
    """Whether an exception field (`proc.name`, `proc.aname[2]`, `tolower(proc.name)`) exists for a source."""
    from processor.engine.fields import lookup_field

    def check(text: str) -> bool:
        m = _TRANSFORMER_CALL.match(text)
        if m:
            return check(m.group(2))
        name = text.strip()
        if name.endswith("]") and "[" in name:
            name = name[: name.index("[")]
        return lookup_field(name, source) is not None

    return check


def default_sources() -> dict[str, SourceSupport]:
    """Every event source E1's field catalogue knows, with the filter compiler and evt.type resolver."""
    from processor.engine.fields import known_sources
    from processor.engine.filter_compiler import compile_filter

    try:
        from processor.engine.evttypes import event_types
    except ImportError:  # until the evt.type resolver exists every rule is checked against every event
        event_types = None  # type: ignore[assignment]
    def compiler_for(source: str) -> Callable[[Any], object]:
        return lambda node: compile_filter(node, source=source)

    out: dict[str, SourceSupport] = {}
    for source in sorted(known_sources()):
        out[source] = SourceSupport(
            field_defined=field_check(source),
            compile_filter=compiler_for(source),
            event_types=event_types if source == SYSCALL_SOURCE else None,
        )
    return out


def rules_files_in(paths: Iterable[str | Path]) -> list[Path]:
    """Falco's rules_files order: as given; a directory contributes its *.yaml/*.yml files sorted by name."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.is_file() and f.suffix in (".yaml", ".yml")))
        else:
            out.append(p)
    return out


@dataclass
class RuleSelection:
    """One falco.yaml `rules:` entry: enable or disable by rule-name wildcard or tag."""

    enable: bool
    rule: str | None = None
    tag: str | None = None

    @staticmethod
    def from_config(entries: Iterable[Mapping[str, Any]]) -> list[RuleSelection]:
        out = []
        for entry in entries:
            for action in ("enable", "disable"):
                sel = entry.get(action)
                if sel:
                    out.append(RuleSelection(action == "enable", sel.get("rule"), sel.get("tag")))
        return out


@dataclass
class EngineConfig:
    rule_matching: str = "first"
    min_priority: Priority = Priority.DEBUG
    output: OutputConfig = field(default_factory=OutputConfig)
    rules: list[RuleSelection] = field(default_factory=list)

    @staticmethod
    def from_falco_yaml(cfg: Mapping[str, Any]) -> EngineConfig:
        """The engine-relevant keys of a falco.yaml-style mapping."""
        prio = parse_priority(str(cfg.get("priority", "debug"))) or Priority.DEBUG
        out = OutputConfig(
            include_output=bool(cfg.get("json_include_output_property", True)),
            include_output_fields=bool(cfg.get("json_include_output_fields_property", True)),
            include_tags=bool(cfg.get("json_include_tags_property", True)),
            include_message=bool(cfg.get("json_include_message_property", False)),
            time_format_iso_8601=bool(cfg.get("time_format_iso_8601", False)),
        )
        if "append_output" in cfg:
            out.append_output = [AppendOutput.from_config(e) for e in cfg.get("append_output") or ()]
        return EngineConfig(
            rule_matching=str(cfg.get("rule_matching", "first")),
            min_priority=prio,
            output=out,
            rules=RuleSelection.from_config(cfg.get("rules") or ()),
        )


class _Process(Protocol):
    def __call__(self, event: Any, source: str = SYSCALL_SOURCE) -> list[Match]: ...


class RulesEngine:
    """Load rules, evaluate events, format alerts."""

    process: _Process
    """`process(event, source="syscall")`: the matches of one event (a mapping read with `.get(key)`), in
    evaluation order. It is the active ruleset's own method, bound here so that an event costs no extra
    call on its way to the rules."""

    def __init__(self, config: EngineConfig | None = None, *, rule_matching: str | None = None,
                 sources: dict[str, SourceSupport] | None = None) -> None:
        self.config = config or EngineConfig()
        if rule_matching is not None:
            self.config.rule_matching = rule_matching
        self.sources = sources if sources is not None else default_sources()
        from processor.engine.filter_compiler import FilterCompileError
        from processor.engine.parser import ConditionSyntaxError, parse_condition

        self._compiler = Compiler(self.sources, parse_condition, ConditionSyntaxError, FilterCompileError)
        self._compiled = CompiledRuleset()
        self._collector: Collector | None = None
        self._activate(Ruleset((), self.config.rule_matching))
        self.plugin_notes: list[str] = []

    # -- loading ----------------------------------------------------------------------------------
    def load_rules_files(self, paths: Iterable[str | Path]) -> LoadResult:
        items: list[tuple[str, str]] = []
        unreadable: FileResult | None = None
        for path in rules_files_in(paths):
            try:
                items.append((str(path), path.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                unreadable = FileResult(str(path))
                unreadable.add_error(ErrorCode.LOAD_ERR_FILE_READ, f"Could not read file {path}: {exc}",
                                     Context.root(str(path)))
                break
        if unreadable is not None:
            result = LoadResult(files=[unreadable])
            self._fill_counts(result)
            return result
        return self.load_rules_content(items)

    def load_rules_content(self, items: Sequence[tuple[str, str]]) -> LoadResult:
        """Load (name, text) rule contents in order into one fresh collector; replaces the active rules on success."""
        collector = Collector({s: sup.field_defined for s, sup in self.sources.items()})
        reader = Reader(collector)
        compile_cfg = CompileConfig(self.config.min_priority, list(self.config.output.append_output))
        result = LoadResult()
        compiled: CompiledRuleset | None = None
        for name, content in items:
            fres = FileResult(name, content)
            result.files.append(fres)
            if reader.read(fres):
                compiled = self._compiler.compile(collector, fres, compile_cfg)
            if not fres.successful:
                compiled = None
                break
        result.notes = self._plugin_requirements(collector.required_plugin_versions)
        if compiled is None and items:
            self._fill_counts(result)  # the previous rules stay active
            return result
        self._collector = collector
        self._compiled = compiled or CompiledRuleset()
        self.plugin_notes = result.notes
        ruleset = Ruleset(self._compiled.rules, self.config.rule_matching)
        for sel in self.config.rules:
            ruleset.select(sel.enable, rule=sel.rule, tag=sel.tag)
        # fuse every event type's rules now: the first event of a type would otherwise pay ~25 ms
        ruleset.compile_all()
        self._activate(ruleset)
        self._fill_counts(result)
        return result

    def _activate(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        self.process = ruleset.process

    def _fill_counts(self, result: LoadResult) -> None:
        col = self._collector
        result.rules = len(self._compiled.rules)
        result.macros = len(col.macros) if col else 0
        result.lists = len(col.lists) if col else 0

    def _plugin_requirements(self, reqs: list[PluginVersionInfo]) -> list[str]:
        """Falco checks plugin requirements after loading; built-in ones are satisfied, others only noted."""
        notes = []
        for info in reqs:
            satisfied = [a for a in info.alternatives if a.name in BUILTIN_PLUGINS]
            if satisfied:
                a = satisfied[0]
                notes.append(f"plugin requirement '{a.name}' (>= {a.version}) satisfied by Peregrine's built-in "
                             f"{a.name} fields")
                continue
            names = ", ".join(f"{a.name} (>= {a.version})" for a in info.alternatives)
            notes.append(f"plugin requirement not satisfied, must load one of: {names} "
                         "(not needed by Peregrine: rules for sources it has no events for never fire)")
        return list(dict.fromkeys(notes))

    # -- queries ----------------------------------------------------------------------------------
    @property
    def counts(self) -> dict[str, int]:
        col = self._collector
        return {"rules": len(self._compiled.rules), "macros": len(col.macros) if col else 0,
                "lists": len(col.lists) if col else 0}

    def rule_names(self) -> list[str]:
        return [r.name for r in self._compiled.rules]

    def describe(self, name: str) -> Any:
        """The compiled rule (condition_compiled, event types, output...) or None."""
        return self.ruleset.by_name.get(name)

    def required_event_types(self) -> set[str]:
        """Event types of the enabled syscall rules (the sensor's adaptive syscall set)."""
        return self.ruleset.required_event_types(SYSCALL_SOURCE)

    def dns_names(self) -> list[str]:
        """The names enabled syscall rules compare fd.sip.name & co. with: the caller resolves them (dns_names.py)."""
        return names_in(r.condition for r in self.ruleset.enabled if r.source == SYSCALL_SOURCE)

    def evaluated_event_types(self) -> frozenset[str] | None:
        """Event types some enabled syscall rule is checked against (None: all): the others need no fields."""
        return self.ruleset.evaluated_event_types(SYSCALL_SOURCE)

    def matches_all_event_types(self) -> bool:
        """True when an enabled syscall rule has no evt.type restriction (the sensor then needs everything)."""
        return self.ruleset.matches_all_event_types(SYSCALL_SOURCE)

    def enable_rules(self, enabled: bool = True, rule: str | None = None, tag: str | None = None) -> int:
        return self.ruleset.select(enabled, rule=rule, tag=tag)

    @property
    def required_engine_version(self) -> str:
        col = self._collector
        return semver_str(col.required_engine_version) if col else "0.0.0"

    # -- evaluation and alerts -------------------------------------------------------------------
    def format_alert(self, match: Match, event: Any, hostname: str, seq: int, time_ns: int) -> dict[str, Any]:
        return format_alert(match.compiled, event, hostname, seq, time_ns, self.config.output)

    def alert_text(self, match: Match, event: Any, time_ns: int) -> str:
        return alert_text(match.compiled, event, time_ns, self.config.output)
