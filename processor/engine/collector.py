"""Falco's rule collector: define/append/override/enable semantics over lists, macros and rules.

Redefinition replaces the content but keeps the original position (`index`, the evaluation order);
`visibility` records the sequence number of the latest define/append, used by the compiler to decide
which macros and lists an item can see (rule_loader_collector.cpp).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from processor.engine.load_result import Context, ErrorCode, FileResult, RuleLoadError, WarningCode
from processor.engine.priority import Priority

ENGINE_VERSION = (0, 63, 0)
"""The Falco engine version whose rules language this engine implements."""

SYSCALL_SOURCE = "syscall"

ERROR_OVERRIDE_APPEND = (
    "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry "
    "(e.g. 'condition: append') under 'override' instead."
)
ERROR_NO_PREVIOUS_MACRO = (
    "Macro uses 'append' or 'override.condition: append' but no macro by that name already exists"
)
ERROR_NO_PREVIOUS_LIST = "List uses 'append' or 'override.items: append' but no list by that name already exists"
ERROR_NO_PREVIOUS_RULE_APPEND = (
    "Rule uses 'append' or 'override.<key>: append' but no rule by that name already exists"
)
ERROR_NO_PREVIOUS_RULE_REPLACE = (
    "An 'override.<key>: replace' to a rule was requested but no rule by that name already exists"
)
WARNING_APPEND = (
    "'append' key is deprecated. Add an 'append' entry (e.g. 'condition: append') under 'override' instead."
)
WARNING_ENABLED = (
    "The standalone 'enabled' key usage is deprecated. The correct approach requires also a 'replace' "
    "entry under the 'override' key (i.e. 'enabled: replace')."
)

# libsinsp's operators (parser.cpp); string operators also take the oneof/anyof/allof modifiers.
UNARY_OPS = ("exists",)
NUM_OPS = ("<=", "<", ">=", ">")
STR_OPS = ("==", "=", "!=", "glob", "iglob", "contains", "icontains", "bcontains", "startswith",
           "bstartswith", "endswith", "regex")
LIST_OPS = ("intersects", "in", "pmatch")
OPERATORS = frozenset(UNARY_OPS + NUM_OPS + STR_OPS + LIST_OPS)
MODIFIERS = ("oneof", "anyof", "allof")


def is_operator_with_modifier(op: str) -> bool:
    """"startswith oneof" and the like: a string operator followed by a list modifier."""
    parts = op.split()
    return len(parts) == 2 and parts[0] in STR_OPS and parts[1] in MODIFIERS


def is_list_operator(op: str) -> bool:
    """Operators whose right-hand side is a list, so exception values get parenthesised."""
    return op.strip() in LIST_OPS or is_operator_with_modifier(op)


def parse_semver(text: str) -> tuple[int, int, int] | None:
    m = re.match(r"^\s*(\d+)\.(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def semver_str(v: tuple[int, int, int]) -> str:
    return ".".join(str(p) for p in v)


@dataclass
class ExceptionEntry:
    """A `fields`/`comps`/`values` entry: a scalar or a (nested) sequence of entries."""

    is_list: bool = False
    item: str = ""
    items: list[ExceptionEntry] = field(default_factory=list)

    def is_valid(self) -> bool:
        return bool(self.items) if self.is_list else bool(self.item)


@dataclass
class ExceptionInfo:
    name: str
    ctx: Context
    fields: ExceptionEntry = field(default_factory=ExceptionEntry)
    comps: ExceptionEntry = field(default_factory=ExceptionEntry)
    values: list[ExceptionEntry] = field(default_factory=list)


@dataclass
class ListInfo:
    name: str
    ctx: Context
    items: list[str] = field(default_factory=list)
    index: int = 0
    visibility: int = 0


@dataclass
class MacroInfo:
    name: str
    ctx: Context
    cond: str = ""
    cond_ctx: Context | None = None
    index: int = 0
    visibility: int = 0


@dataclass
class RuleInfo:
    name: str
    ctx: Context
    cond: str = ""
    cond_ctx: Context | None = None
    output: str = ""
    output_ctx: Context | None = None
    desc: str = ""
    priority: Priority = Priority.DEBUG
    source: str = SYSCALL_SOURCE
    tags: set[str] = field(default_factory=set)
    exceptions: list[ExceptionInfo] = field(default_factory=list)
    enabled: bool = True
    warn_evttypes: bool = True
    skip_if_unknown_filter: bool = False
    capture: bool = False
    capture_duration: int = 0
    index: int = 0
    visibility: int = 0
    unknown_source: bool = False


@dataclass
class RuleUpdate:
    """An append or selective-replace item: only the keys that were given are set."""

    name: str
    ctx: Context
    cond: str | None = None
    output: str | None = None
    desc: str | None = None
    tags: set[str] | None = None
    exceptions: list[ExceptionInfo] | None = None
    priority: Priority | None = None
    enabled: bool | None = None
    warn_evttypes: bool | None = None
    skip_if_unknown_filter: bool | None = None
    capture: bool | None = None
    capture_duration: int | None = None

    def has_any_value(self) -> bool:
        return any(
            v is not None
            for v in (self.cond, self.output, self.desc, self.tags, self.exceptions, self.priority,
                      self.enabled, self.warn_evttypes, self.skip_if_unknown_filter, self.capture,
                      self.capture_duration)
        )


@dataclass(frozen=True)
class PluginRequirement:
    name: str
    version: str


@dataclass
class PluginVersionInfo:
    ctx: Context
    alternatives: list[PluginRequirement] = field(default_factory=list)


FieldCheck = Callable[[str], bool]
"""Tells whether a field (possibly with transformers) exists for an event source."""


def _fail(message: str, ctx: Context) -> RuleLoadError:
    return RuleLoadError(ErrorCode.LOAD_ERR_VALIDATE, message, ctx)


class Collector:
    """Accumulates items of every file loaded into one engine, in Falco's definition order."""

    def __init__(self, sources: dict[str, FieldCheck]) -> None:
        self.sources = sources
        self.lists: dict[str, ListInfo] = {}
        self.macros: dict[str, MacroInfo] = {}
        self.rules: dict[str, RuleInfo] = {}
        self.required_engine_version: tuple[int, int, int] = (0, 0, 0)
        self.required_plugin_versions: list[PluginVersionInfo] = []
        self._cur_index = 0

    def _next(self) -> int:
        n = self._cur_index
        self._cur_index += 1
        return n

    def _define(self, infos: dict, info: ListInfo | MacroInfo | RuleInfo) -> None:
        n = self._next()
        prev = infos.get(info.name)
        info.index = prev.index if prev is not None else n
        info.visibility = n
        infos[info.name] = info  # replacing a key keeps its dict position = original index order

    # -- versions ---------------------------------------------------------------------------------
    def define_engine_version(self, version: tuple[int, int, int], ctx: Context) -> None:
        if version[0] != ENGINE_VERSION[0] or version > ENGINE_VERSION:
            raise _fail(
                f"Rules require engine version {semver_str(version)}, "
                f"but engine version is {semver_str(ENGINE_VERSION)}",
                ctx,
            )
        self.required_engine_version = max(self.required_engine_version, version)

    def define_plugin_versions(self, info: PluginVersionInfo) -> None:
        seen: set[str] = set()
        for req in info.alternatives:
            if parse_semver(req.version) is None:
                raise _fail(f"Invalid required version '{req.version}' for plugin '{req.name}'", info.ctx)
            if req.name in seen:
                raise _fail(
                    f"Defined multiple alternative version requirements for plugin '{req.name}'", info.ctx
                )
            seen.add(req.name)
        self.required_plugin_versions.append(info)

    # -- lists and macros -------------------------------------------------------------------------
    def define_list(self, info: ListInfo) -> None:
        self._define(self.lists, info)

    def append_list(self, info: ListInfo) -> None:
        prev = self.lists.get(info.name)
        if prev is None:
            raise _fail(ERROR_NO_PREVIOUS_LIST, info.ctx)
        prev.items.extend(info.items)
        prev.visibility = self._next()

    def define_macro(self, info: MacroInfo) -> None:
        self._define(self.macros, info)

    def append_macro(self, info: MacroInfo) -> None:
        prev = self.macros.get(info.name)
        if prev is None:
            raise _fail(ERROR_NO_PREVIOUS_MACRO, info.ctx)
        prev.cond = prev.cond + " " + info.cond
        prev.visibility = self._next()

    # -- rules ------------------------------------------------------------------------------------
    def define_rule(self, info: RuleInfo, result: FileResult) -> None:
        prev = self.rules.get(info.name)
        if prev is not None and prev.source != info.source:
            raise _fail("Rule has been re-defined with a different source", info.ctx)
        check = self.sources.get(info.source)
        if check is None:
            info.unknown_source = True
            result.add_warning(WarningCode.LOAD_UNKNOWN_SOURCE, f"Unknown source {info.source}, skipping",
                               info.ctx)
        for ex in info.exceptions:
            if not ex.fields.is_valid():
                raise _fail("Rule exception item must have fields property with a list of fields", ex.ctx)
            validate_exception(check, ex)
        self._define(self.rules, info)

    def _source_check(self, prev: RuleInfo, ctx: Context) -> FieldCheck | None:
        if prev.unknown_source:
            return None
        check = self.sources.get(prev.source)
        if check is None:
            raise _fail(f"Unknown source {prev.source}", ctx)
        return check

    def append_rule(self, info: RuleUpdate) -> None:
        prev = self.rules.get(info.name)
        if prev is None:
            raise _fail(ERROR_NO_PREVIOUS_RULE_APPEND, info.ctx)
        if not info.has_any_value():
            raise _fail("Appended rule must have exceptions or condition property", info.ctx)
        check = self._source_check(prev, info.ctx)
        if info.cond:
            prev.cond += " " + info.cond
        if info.output:
            prev.output += " " + info.output
        if info.desc:
            prev.desc += " " + info.desc
        if info.tags is not None:
            prev.tags |= info.tags
        for ex in info.exceptions or ():
            same = next((p for p in prev.exceptions if p.name == ex.name), None)
            if same is None:
                if not ex.fields.is_valid():
                    raise _fail("Rule exception must have fields property with a list of fields", ex.ctx)
                if not ex.values:
                    raise _fail("Rule exception must have values property with a list of values", ex.ctx)
                validate_exception(check, ex)
                prev.exceptions.append(ex)
            else:
                if ex.fields.is_valid():
                    raise _fail("Can not append exception fields to existing exception, only values", ex.ctx)
                if ex.comps.is_valid():
                    raise _fail("Can not append exception comps to existing exception, only values", ex.ctx)
                same.values.extend(ex.values)
        prev.visibility = self._next()

    def replace_rule(self, info: RuleUpdate) -> None:
        prev = self.rules.get(info.name)
        if prev is None:
            raise _fail(ERROR_NO_PREVIOUS_RULE_REPLACE, info.ctx)
        if not info.has_any_value():
            raise _fail("The rule must have at least one field that can be replaced", info.ctx)
        check = self._source_check(prev, info.ctx)
        if info.exceptions is not None:
            for ex in info.exceptions:
                if not ex.fields.is_valid():
                    raise _fail("Rule exception item must have fields property with a list of fields", ex.ctx)
                validate_exception(check, ex)
            prev.exceptions = info.exceptions
        for key in ("cond", "output", "desc", "tags", "priority", "enabled", "warn_evttypes",
                    "skip_if_unknown_filter", "capture", "capture_duration"):
            value = getattr(info, key)
            if value is not None:
                setattr(prev, key, value)
        prev.visibility = self._next()

    def enable_rule(self, name: str, enabled: bool, ctx: Context) -> None:
        prev = self.rules.get(name)
        if prev is None:
            raise _fail("Rule has 'enabled' key but no rule by that name already exists", ctx)
        prev.enabled = enabled


def validate_exception(check: FieldCheck | None, ex: ExceptionInfo) -> None:
    """Defaults for `comps` and the checks of validate_exception_info (tuple and single-field forms)."""
    if ex.fields.is_list:
        if not ex.comps.is_valid():
            ex.comps = ExceptionEntry(is_list=True, items=[ExceptionEntry(item="=") for _ in ex.fields.items])
        if len(ex.fields.items) != len(ex.comps.items):
            raise _fail("Fields and comps lists must have equal length", ex.ctx)
        for comp in ex.comps.items:
            op = comp.item.strip()
            if op not in OPERATORS and not is_operator_with_modifier(op):
                raise _fail(f"'{comp.item}' is not a supported comparison operator", ex.ctx)
        if check is not None:
            for f in ex.fields.items:
                if not check(f.item):
                    raise _fail(f"'{f.item}' is not a supported filter field", ex.ctx)
    else:
        if not ex.comps.is_valid():
            ex.comps = ExceptionEntry(item="in")
        if ex.comps.is_list:
            raise _fail("Fields and comps must both be strings", ex.ctx)
        op = ex.comps.item.strip()
        if op not in LIST_OPS and not is_operator_with_modifier(op):
            raise _fail(
                "When fields is a single value, comps must be one of (in, pmatch, intersects) or a "
                "modifier operator (e.g. startswith oneof)",
                ex.ctx,
            )
        if check is not None and not check(ex.fields.item):
            raise _fail(f"'{ex.fields.item}' is not a supported filter field", ex.ctx)
