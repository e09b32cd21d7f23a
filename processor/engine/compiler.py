"""Falco's rule compiler: collected lists/macros/rules -> compiled rules (rule_loader_compiler.cpp).

Lists are substituted into condition *text* before parsing (so `x in (list)` works and a name that is
no list stays a string); macros are substituted as syntax trees with Falco's visibility rules; exceptions
become `(<condition>) and not (...)` text exactly as Falco builds it. Parsed conditions and compiled
filters are cached by text, so loading several files (each load recompiles everything, as in Falco)
stays cheap.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from processor.engine import ast, warning_resolver
from processor.engine.collector import (
    SYSCALL_SOURCE,
    Collector,
    ExceptionInfo,
    ListInfo,
    is_list_operator,
)
from processor.engine.formatter import AppendOutput, OutputFormat, OutputFormatError, parse_output
from processor.engine.load_result import Context, ErrorCode, FileResult, RuleLoadError, WarningCode
from processor.engine.priority import Priority

MAX_EVTTYPES_WITHOUT_WARNING = 100
DEPRECATED_FIELDS = {
    "evt.dir": "due to the drop of enter events, 'evt.dir = <' always evaluates to true, and 'evt.dir = >' "
               "always evaluates to false. The rule expression can be simplified by removing the condition "
               "on 'evt.dir'",
    **{f: "field is not available due to the drop of enter events." for f in (
        "evt.latency", "evt.latency.s", "evt.latency.ns", "evt.latency.human", "evt.wait_latency")},
}
_UNKNOWN_FILTER_MARKERS = ("nonexistent field", "invalid formatting token", "unknown event type", "unknown filter:")
_FIELD_LIKE = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*(\.[a-zA-Z]+[a-zA-Z0-9_]*)+(\[[^\]]*\])?")
_TRANSFORMER_LIKE = re.compile(r"(tolower|toupper|b64|basename|len|join|concat|getopt)\s*\(.*\)", re.S)


@dataclass
class SourceSupport:
    """What the engine can do for one event source: field lookup and filter compilation."""

    field_defined: Callable[[str], bool]
    compile_filter: Callable[[ast.Node], object]
    event_types: Callable[[ast.Node], frozenset[str] | None] | None = None


@dataclass
class CompileConfig:
    min_priority: Priority = Priority.DEBUG
    append_output: list[AppendOutput] = field(default_factory=list)


@dataclass
class CompiledRule:
    """A rule ready for evaluation; `condition_compiled` is libsinsp's as_string of the final tree."""

    name: str
    source: str
    desc: str
    priority: Priority
    tags: tuple[str, ...]
    condition: ast.Node
    condition_compiled: str
    filter: object
    output: OutputFormat
    event_types: frozenset[str] | None
    enabled: bool
    index: int
    capture: bool = False
    capture_duration: int = 0
    extra_fields: dict[str, OutputFormat] = field(default_factory=dict)
    exception_fields: tuple[str, ...] = ()

    def match(self, event: object) -> bool:
        return bool(self.filter.match(event))  # type: ignore[attr-defined]


@dataclass
class CompiledRuleset:
    rules: list[CompiledRule] = field(default_factory=list)
    macros: dict[str, ast.Node] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)


def quote_item(item: str) -> str:
    """Falco's quote_item: items with a space are double-quoted unless already quoted."""
    if " " in item and item[:1] not in ('"', "'"):
        return f'"{item}"'
    return item


def paren_item(item: str) -> str:
    return item if item.startswith("(") else f"({item})"


_BLANKS = " \t\n\r"
_DELIMS = _BLANKS + "(),="


def resolve_list(cnd: str, name: str, items: list[str]) -> tuple[str, bool]:
    """Falco's textual list substitution (resolve_list), quirks included."""
    used = False
    start = cnd.find(name)
    while start != -1:
        end = start + len(name)
        if (start == 0 or cnd[start - 1] in _DELIMS) and (end >= len(cnd) or cnd[end] in _DELIMS):
            while start > 0 and cnd[start - 1] in _BLANKS:
                start -= 1
            while end < len(cnd) and cnd[end] in _BLANKS:
                end += 1
            sub = ", ".join(items)
            if not sub:
                if start > 0 and cnd[start - 1] == ",":
                    start -= 1
                elif end < len(cnd) and cnd[end] == ",":
                    end += 1
            new = (cnd[:start] + " " if start > 0 else "") + sub + " " + cnd[end:]
            cnd = new
            start += len(sub) + 1
            used = True
        start = cnd.find(name, start + 1)
    return cnd, used


def build_exceptions(cond: str, exceptions: list[ExceptionInfo]) -> tuple[str, set[str]]:
    """`(<condition>) and not <ex1> and not <ex2>`, Falco's build_rule_exception_infos."""
    fields: set[str] = set()
    parts: list[str] = []
    for ex in exceptions:
        icond = ""
        if not ex.fields.is_list:
            values = []
            for val in ex.values:
                if val.is_list:
                    raise RuleLoadError(ErrorCode.LOAD_ERR_VALIDATE,
                                        "Expected values array to contain a list of strings", ex.ctx)
                values.append(quote_item(val.item))
            fields.add(ex.fields.item)
            if values:
                icond = f"({ex.fields.item} {ex.comps.item.strip()} ({', '.join(values)}))"
        else:
            rows = []
            for row in ex.values:
                if len(ex.fields.items) != len(row.items) or not row.is_list:
                    raise RuleLoadError(ErrorCode.LOAD_ERR_VALIDATE,
                                        "Fields and values lists must have equal length", ex.ctx)
                checks = []
                for fld, comp, value in zip(ex.fields.items, ex.comps.items, row.items, strict=True):
                    op = comp.item.strip()
                    if value.is_list:
                        rhs = "(" + ", ".join(quote_item(v.item) for v in value.items) + ")"
                    elif is_list_operator(op):
                        rhs = paren_item(value.item)
                    else:
                        rhs = quote_item(value.item)
                    checks.append(f"{fld.item} {op} {rhs}")
                    fields.add(fld.item)
                rows.append("(" + " and ".join(checks) + ")")
            if rows:
                icond = "(" + " or ".join(rows) + ")"
        if icond:
            parts.append(" and not " + icond)
    if not parts:
        return cond, fields
    return "(" + cond + ")" + "".join(parts), fields


def _line_col(text: str, index: int) -> tuple[int, int]:
    """libsinsp positions: 1-based line and column of an offset."""
    index = max(0, min(index, len(text)))
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, col


def condition_context(parent: Context, condition: str, index: int) -> Context:
    line, col = _line_col(condition, index)
    return parent.condition(condition, index, line, col)


class _MacroResolver:
    """filter_macro_resolver: Identifier -> macro tree, with loop detection and unknown names."""

    def __init__(self, bodies: dict[str, ast.Node], visible: Callable[[str], bool]) -> None:
        self.bodies = bodies
        self.visible = visible
        self.path: list[str] = []
        self.errors: list[tuple[str, int]] = []
        self.unknown: dict[str, int] = {}
        self.resolved: set[str] = set()

    def run(self, node: ast.Node) -> ast.Node:
        if isinstance(node, ast.Identifier):
            name = node.name
            body = self.bodies.get(name)
            if body is None or not self.visible(name):
                self.unknown.setdefault(name, node.pos)
                return node
            if name in self.path:
                self.errors.append((f"reference loop in macro '{name}'", node.pos))
                return node
            self.path.append(name)
            new = self.run(body)
            self.path.pop()
            self.resolved.add(name)
            return new
        if isinstance(node, ast.And | ast.Or):
            kids = [self.run(c) for c in node.children]
            if all(a is b for a, b in zip(kids, node.children, strict=True)):
                return node
            return type(node)(kids, pos=node.pos)
        if isinstance(node, ast.Not):
            child = self.run(node.child)
            return node if child is node.child else ast.Not(child, pos=node.pos)
        return node


class Compiler:
    """Compiles a collector's content; keeps parse/filter caches across loads of the same engine."""

    def __init__(self, sources: dict[str, SourceSupport],
                 parse: Callable[[str], ast.Node], syntax_error: type[Exception],
                 compile_error: type[Exception]) -> None:
        self.sources = sources
        self._parse = parse
        self._syntax_error = syntax_error
        self._compile_error = compile_error
        self._parse_cache: dict[str, ast.Node | Exception] = {}
        self._filter_cache: dict[tuple[str, str], object] = {}

    # -- stages -----------------------------------------------------------------------------------
    def compile(self, col: Collector, result: FileResult, config: CompileConfig) -> CompiledRuleset | None:
        """Returns None after recording the first error in `result`."""
        try:
            lists, list_used = self._compile_lists(col)
            macros, macro_used = self._compile_macros(col, lists, list_used)
            rules = self._compile_rules(col, lists, list_used, macros, macro_used, result, config)
        except RuleLoadError as exc:
            result.add_error(exc.code, exc.message, exc.context)
            return None
        for name, info in col.macros.items():
            if name not in macro_used:
                result.add_warning(WarningCode.LOAD_UNUSED_MACRO, "Macro not referred to by any other rule/macro",
                                   info.ctx)
        for name, linfo in col.lists.items():
            if name not in list_used:
                result.add_warning(WarningCode.LOAD_UNUSED_LIST, "List not referred to by any other rule/macro",
                                   linfo.ctx)
        return CompiledRuleset(rules=rules, macros=macros, lists={n: lst.items for n, lst in lists.items()})

    def _compile_lists(self, col: Collector) -> tuple[dict[str, ListInfo], set[str]]:
        out: dict[str, ListInfo] = {}
        used: set[str] = set()
        for lst in col.lists.values():
            items: list[str] = []
            for item in lst.items:
                ref = col.lists.get(item)
                if ref is not None and ref.index < lst.visibility:
                    used.add(ref.name)
                    items.extend(quote_item(v) for v in ref.items)
                else:
                    items.append(quote_item(item))
            out[lst.name] = ListInfo(lst.name, lst.ctx, items, lst.index, lst.visibility)
        return out, used

    def _substitute_lists(self, cond: str, lists: dict[str, ListInfo], used: set[str]) -> str:
        for lst in lists.values():
            if lst.name in cond:
                cond, hit = resolve_list(cond, lst.name, lst.items)
                if hit:
                    used.add(lst.name)
        return cond

    def _parse_condition(self, cond: str, lists: dict[str, ListInfo], used: set[str],
                         ctx: Context) -> tuple[str, ast.Node]:
        text = self._substitute_lists(cond, lists, used)
        cached = self._parse_cache.get(text)
        if cached is None:
            try:
                cached = self._parse(text)
            except self._syntax_error as exc:
                cached = exc
            self._parse_cache[text] = cached
        if isinstance(cached, Exception):
            pos = int(getattr(cached, "pos", 0))
            raise RuleLoadError(ErrorCode.LOAD_ERR_COMPILE_CONDITION, getattr(cached, "message", str(cached)),
                                condition_context(ctx, text, pos))
        return text, cached

    def _resolve(self, node: ast.Node, bodies: dict[str, ast.Node], visible: Callable[[str], bool],
                 condition: str, ctx: Context, used: set[str]) -> ast.Node:
        resolver = _MacroResolver(bodies, visible)
        new = resolver.run(node)
        if resolver.errors or resolver.unknown:
            if resolver.errors:
                msg, pos = resolver.errors[0]
            else:
                name = min(resolver.unknown)
                msg, pos = f"Undefined macro '{name}' used in filter.", resolver.unknown[name]
            raise RuleLoadError(ErrorCode.LOAD_ERR_VALIDATE, msg, condition_context(ctx, condition, pos))
        used |= resolver.resolved
        return new

    def _compile_macros(self, col: Collector, lists: dict[str, ListInfo],
                        list_used: set[str]) -> tuple[dict[str, ast.Node], set[str]]:
        texts: dict[str, str] = {}
        bodies: dict[str, ast.Node] = {}
        for m in col.macros.values():
            texts[m.name], bodies[m.name] = self._parse_condition(m.cond, lists, list_used, m.cond_ctx or m.ctx)
        used: set[str] = set()
        for m in col.macros.values():
            def visible(name: str, vis: int = m.visibility) -> bool:
                return col.macros[name].index < vis
            bodies[m.name] = self._resolve(bodies[m.name], bodies, visible, texts[m.name], m.ctx, used)
        return bodies, used

    def _compile_rules(self, col: Collector, lists: dict[str, ListInfo], list_used: set[str],
                       macros: dict[str, ast.Node], macro_used: set[str], result: FileResult,
                       config: CompileConfig) -> list[CompiledRule]:
        out: list[CompiledRule] = []
        for r in col.rules.values():
            if r.priority > config.min_priority or r.unknown_source:
                continue
            support = self.sources.get(r.source)
            if support is None:
                raise RuleLoadError(ErrorCode.LOAD_ERR_VALIDATE, f"Unknown source {r.source}", r.ctx)
            cond_ctx = r.cond_ctx or r.ctx
            condition, exception_fields = build_exceptions(r.cond, r.exceptions)
            text, tree = self._parse_condition(condition, lists, list_used, cond_ctx)
            tree = self._resolve(tree, macros, lambda _name: True, text, r.ctx, macro_used)

            extras = [a for a in config.append_output if a.matches(r.name, r.source, r.tags)]
            fmt_text = r.output
            for extra in extras:
                if extra.text(r.source):
                    fmt_text += " " + extra.text(r.source)
            try:
                output = parse_output(fmt_text, r.source)
                extra_fields = {k: parse_output(v, r.source) for a in extras for k, v in a.fields().items()}
            except OutputFormatError as exc:
                if r.skip_if_unknown_filter and _is_unknown_filter(str(exc)):
                    result.add_warning(WarningCode.LOAD_UNKNOWN_FILTER, str(exc), r.output_ctx or r.ctx)
                    continue
                raise RuleLoadError(ErrorCode.LOAD_ERR_COMPILE_OUTPUT, str(exc), r.output_ctx or r.ctx) from None
            for name in output.field_names():
                if name in DEPRECATED_FIELDS:
                    result.add_warning(WarningCode.LOAD_DEPRECATED_ITEM, DEPRECATED_FIELDS[name],
                                       r.output_ctx or r.ctx, detail=f"field '{name}'")

            self._resolver_warnings(tree, result, cond_ctx)
            compiled_text = ast.as_string(tree)
            key = (r.source, compiled_text)
            flt = self._filter_cache.get(key)
            if flt is None:
                try:
                    flt = support.compile_filter(tree)
                except self._compile_error as exc:
                    msg = getattr(exc, "message", str(exc))
                    if r.skip_if_unknown_filter and _is_unknown_filter(msg):
                        result.add_warning(WarningCode.LOAD_UNKNOWN_FILTER, msg, cond_ctx)
                        continue
                    raise RuleLoadError(ErrorCode.LOAD_ERR_COMPILE_CONDITION, msg, cond_ctx) from None
                self._filter_cache[key] = flt
            self._compiler_warnings(tree, result, cond_ctx, r.source)

            evttypes: frozenset[str] | None = None
            if r.source == SYSCALL_SOURCE and support.event_types is not None:
                evttypes = support.event_types(tree)
                if r.warn_evttypes and (evttypes is None or len(evttypes) > MAX_EVTTYPES_WITHOUT_WARNING):
                    result.add_warning(WarningCode.LOAD_NO_EVTTYPE,
                                       "Rule matches too many evt.type values. This has a significant "
                                       "performance penalty.", r.ctx)
            out.append(CompiledRule(
                name=r.name, source=r.source, desc=r.desc, priority=r.priority, tags=tuple(sorted(r.tags)),
                condition=tree, condition_compiled=compiled_text, filter=flt, output=output,
                event_types=evttypes, enabled=r.enabled, index=r.index, capture=r.capture,
                capture_duration=r.capture_duration, extra_fields=extra_fields,
                exception_fields=tuple(sorted(exception_fields)),
            ))
        return out

    def _resolver_warnings(self, tree: ast.Node, result: FileResult, cond_ctx: Context) -> None:
        """filter_warning_resolver: one <NA> warning and one per distinct deprecated field per rule.

        Falco passes an empty message for LOAD_UNSAFE_NA_CHECK: the code's description explains it.
        """
        findings = warning_resolver.resolve(tree, DEPRECATED_FIELDS)
        if findings.unsafe_na_check:
            result.add_warning(WarningCode.LOAD_UNSAFE_NA_CHECK, "", cond_ctx)
        for name in findings.deprecated_fields:
            result.add_warning(WarningCode.LOAD_DEPRECATED_ITEM, DEPRECATED_FIELDS[name], cond_ctx,
                               detail=f"field '{name}'")

    def _compiler_warnings(self, tree: ast.Node, result: FileResult, cond_ctx: Context, source: str) -> None:
        """Constants that look like fields or transformers (libsinsp compiler warnings)."""
        for node in ast.walk(tree):
            if isinstance(node, ast.Check) and node.value is not None:
                values = node.value.items if isinstance(node.value, ast.ListValue) else [node.value]
                for value in values:
                    if not isinstance(value, ast.StrValue):
                        continue
                    text = value.text.strip()
                    if _TRANSFORMER_LIKE.fullmatch(text):
                        result.add_warning(WarningCode.LOAD_COMPILE_CONDITION,
                                           f"'{value.text}' may be a valid field transformer misused as a "
                                           "const string value", cond_ctx)
                    elif _FIELD_LIKE.fullmatch(text) and self._is_field(text, source):
                        result.add_warning(WarningCode.LOAD_COMPILE_CONDITION,
                                           f"'{value.text}' may be a valid field misused as a const string value",
                                           cond_ctx)

    def _is_field(self, text: str, source: str) -> bool:
        support = self.sources.get(source)
        return bool(support and support.field_defined(text))


def _is_unknown_filter(message: str) -> bool:
    return any(marker in message for marker in _UNKNOWN_FILTER_MARKERS)
