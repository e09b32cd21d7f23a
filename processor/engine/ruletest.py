"""Rule unit tests: YAML cases of field-map events and the rules that must (not) fire on them.

Rule authors test a rule the way they test code: without a kernel, by writing the events a behaviour
produces as field maps (Falco field name -> value) and naming the rules expected to fire. A case file:

    rules: [../shared/falco-rules/falco_rules.yaml]   # optional; default: Peregrine's default rules
    base_event: {user.name: root, proc.tty: 0}         # optional; merged under every event
    cases:
      - name: cat reads /etc/shadow
        event: {evt.type: openat, fd.name: /etc/shadow, proc.name: cat}   # or `events: [...]`
        expect: [Credential File Read by Untrusted Program]
        expect_not: [Write Below Etc]

A key set to null in an event removes it from the base event (a missing field is an absent key).
Rules files (YAML sequences of rule/macro/list items) found in a directory are not taken for cases, so
a customisation can sit next to the cases that load it. Relative `rules` paths resolve against the case file's directory, then against the project root
(the nearest ancestor holding pyproject.toml or .git), so a repository can point at shared rule files.
Every rule runs on every event (rule_matching: all); a case passes when every `expect` rule fired on at
least one of its events and no `expect_not` rule fired on any. Naming a rule the files do not define is
a failure, so a typo cannot make `expect_not` pass vacuously.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

CASE_FILE_SUFFIXES = (".yaml", ".yml")


class CaseFileError(Exception):
    """A case file that cannot be read; the message names file:line:col."""


@dataclass(frozen=True)
class RuleCase:
    name: str
    location: str  # file:line:col of the case, for messages
    events: tuple[Mapping[str, Any], ...]
    expect: tuple[str, ...]
    expect_not: tuple[str, ...]
    rules_files: tuple[Path, ...]  # empty = the default rules


@dataclass
class CaseResult:
    case: RuleCase
    fired: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def line(self) -> str:
        status = "PASS" if self.passed else "FAIL"
        text = f"{status} {self.case.location} {self.case.name}"
        if self.problems:
            text += ": " + "; ".join(self.problems)
        return text


@dataclass
class SuiteReport:
    results: list[CaseResult] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.passed)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed

    @property
    def ok(self) -> bool:
        return self.failed == 0 and bool(self.results)

    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed"


class CaseEngine(Protocol):
    """What the runner needs from a loaded engine: rule names, and the rules an event fires."""

    def rule_names(self) -> set[str]: ...

    def fired(self, event: Mapping[str, Any]) -> list[str]: ...


EngineFactory = Callable[[Sequence[Path]], CaseEngine]


class EngineLoadError(Exception):
    """Rule files that did not load; the message is the engine's load report."""


# ---------------------------------------------------------------------------------------------------
# Reading case files
# ---------------------------------------------------------------------------------------------------


def project_root(start: Path) -> Path | None:
    for parent in [start, *start.parents]:
        if (parent / "pyproject.toml").exists() or (parent / ".git").exists():
            return parent
    return None


def resolve_rules_path(raw: str, case_file: Path) -> Path:
    path = Path(raw).expanduser()
    if path.is_absolute():
        return path
    local = (case_file.parent / path).resolve()
    if local.exists():
        return local
    root = project_root(case_file.parent.resolve())
    if root is not None and (root / path).exists():
        return (root / path).resolve()
    return local  # not found anywhere: the engine reports the read error with this path


RULES_ITEM_KEYS = frozenset({"rule", "macro", "list", "required_engine_version", "required_plugin_versions"})


def is_rules_file(path: Path) -> bool:
    """A Falco rules file (a sequence of rule/macro/list items), which may sit next to the cases using it."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, list) and any(isinstance(i, dict) and RULES_ITEM_KEYS & set(i) for i in data)


def discover_case_files(paths: Iterable[Path]) -> list[Path]:
    """Case files under the given files/directories, recursively, in a stable order.

    Inside directories, rules files are skipped; a file named explicitly is always read as cases.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*")
                                if p.suffix in CASE_FILE_SUFFIXES and p.is_file() and not is_rules_file(p)))
        else:
            found.append(path)
    return found


def _where(path: Path, node: yaml.Node) -> str:
    return f"{path}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _string_list(value: Any, what: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise CaseFileError(f"{where}: '{what}' must be a rule name or a list of rule names")


def _merge(base: Mapping[str, Any], event: Any, where: str) -> dict[str, Any]:
    if not isinstance(event, Mapping):
        raise CaseFileError(f"{where}: an event must be a mapping of Falco field names to values")
    merged = dict(base)
    for key, value in event.items():
        if not isinstance(key, str):
            raise CaseFileError(f"{where}: field names must be strings, got {key!r}")
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _rules_files(value: Any, case_file: Path, where: str) -> tuple[Path, ...] | None:
    if value is None:
        return None
    raw = [value] if isinstance(value, str) else value
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise CaseFileError(f"{where}: 'rules' must be a path or a list of paths")
    return tuple(resolve_rules_path(v, case_file) for v in raw)


def load_case_file(path: Path) -> list[RuleCase]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CaseFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        pos = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise CaseFileError(f"{path}{pos}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    finally:
        loader.dispose()
    if root is None:
        return []

    file_rules: tuple[Path, ...] | None = None
    base: Mapping[str, Any] = {}
    cases_node: yaml.Node = root
    if isinstance(data, dict):
        unknown = set(data) - {"rules", "base_event", "cases"}
        if unknown:
            raise CaseFileError(f"{_where(path, root)}: unknown top-level key(s) {sorted(unknown)}")
        file_rules = _rules_files(data.get("rules"), path, _where(path, root))
        base = _merge({}, data.get("base_event") or {}, _where(path, root))
        cases_node = next((v for k, v in root.value if k.value == "cases"), None)  # type: ignore[assignment]
        if cases_node is None:
            raise CaseFileError(f"{_where(path, root)}: no 'cases' list")
        data = data["cases"]
    if not isinstance(data, list) or not isinstance(cases_node, yaml.SequenceNode):
        raise CaseFileError(f"{_where(path, cases_node)}: 'cases' must be a list of cases")

    cases: list[RuleCase] = []
    for item, node in zip(data, cases_node.value, strict=True):
        where = _where(path, node)
        if not isinstance(item, dict):
            raise CaseFileError(f"{where}: a case must be a mapping")
        unknown = set(item) - {"name", "event", "events", "expect", "expect_not", "rules"}
        if unknown:
            raise CaseFileError(f"{where}: unknown case key(s) {sorted(unknown)}")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise CaseFileError(f"{where}: a case needs a 'name'")
        if ("event" in item) == ("events" in item):
            raise CaseFileError(f"{where}: case '{name}' needs exactly one of 'event' or 'events'")
        raw_events = [item["event"]] if "event" in item else item["events"]
        if not isinstance(raw_events, list) or not raw_events:
            raise CaseFileError(f"{where}: case '{name}': 'events' must be a non-empty list")
        expect = _string_list(item.get("expect"), "expect", where)
        expect_not = _string_list(item.get("expect_not"), "expect_not", where)
        if not expect and not expect_not:
            raise CaseFileError(f"{where}: case '{name}' needs 'expect' and/or 'expect_not'")
        case_rules = _rules_files(item.get("rules"), path, where)
        rules = case_rules if case_rules is not None else file_rules
        cases.append(
            RuleCase(
                name=name,
                location=where,
                events=tuple(_merge(base, e, where) for e in raw_events),
                expect=expect,
                expect_not=expect_not,
                rules_files=rules or (),
            )
        )
    return cases


# ---------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------


def run_case(case: RuleCase, engine: CaseEngine) -> CaseResult:
    result = CaseResult(case)
    known = engine.rule_names()
    for rule in (*case.expect, *case.expect_not):
        if rule not in known:
            result.problems.append(f"no rule named '{rule}' is loaded")
    fired: list[str] = []
    for event in case.events:
        for rule in engine.fired(event):
            if rule not in fired:
                fired.append(rule)
    result.fired = fired
    missing = [r for r in case.expect if r in known and r not in fired]
    unwanted = [r for r in case.expect_not if r in fired]
    if missing:
        result.problems.append(f"expected to fire but did not: {missing}")
    if unwanted:
        result.problems.append(f"fired but must not: {unwanted}")
    if missing or unwanted:
        result.problems.append(f"fired: {fired}")
    return result


def run_case_files(
    paths: Iterable[Path],
    engine_factory: EngineFactory | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
) -> SuiteReport:
    """Run every case under `paths`, loading each distinct set of rule files once."""
    factory = engine_factory or default_engine_factory
    engines: dict[tuple[Path, ...], CaseEngine | EngineLoadError] = {}
    report = SuiteReport()

    def record(result: CaseResult) -> None:
        report.results.append(result)
        if on_result is not None:
            on_result(result)

    for case_file in discover_case_files(paths):
        try:
            cases = load_case_file(case_file)
        except CaseFileError as exc:
            bad = RuleCase(name="(case file)", location=str(case_file), events=(), expect=(), expect_not=(),
                           rules_files=())
            record(CaseResult(bad, problems=[str(exc)]))
            continue
        for case in cases:
            key = case.rules_files
            if key not in engines:
                try:
                    engines[key] = factory(key)
                except EngineLoadError as exc:
                    engines[key] = exc
            engine = engines[key]
            if isinstance(engine, EngineLoadError):
                record(CaseResult(case, problems=[f"rules did not load: {engine}"]))
                continue
            record(run_case(case, engine))
    return report


# ---------------------------------------------------------------------------------------------------
# The real engine behind the runner
# ---------------------------------------------------------------------------------------------------


@dataclass
class _LoadedEngine:
    engine: Any
    names: set[str]

    def rule_names(self) -> set[str]:
        return self.names

    def fired(self, event: Mapping[str, Any]) -> list[str]:
        return [m.rule for m in self.engine.process(event)]


def default_engine_factory(rules_files: Sequence[Path]) -> CaseEngine:
    """A RulesEngine with every rule evaluated per event, loaded with the files (default: ours)."""
    from processor.engine.engine import RulesEngine
    from processor.rules import default_rules_files

    files = list(rules_files) or default_rules_files()
    engine = RulesEngine(rule_matching="all")
    result = engine.load_rules_files(files)
    if not result.successful:
        raise EngineLoadError(str(result))
    return _LoadedEngine(engine, set(engine.rule_names()))
