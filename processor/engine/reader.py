"""Falco's rule reader: YAML documents -> list/macro/rule items handed to the collector.

Uses PyYAML's composer (libyaml when available) so every item, key and value keeps its mark
(0-based line/column and offset, like yaml-cpp), which the report shows as file:line:col.
Structure errors are LOAD_ERR_YAML_VALIDATE with Falco's messages (rule_loader_reader.cpp).
"""

from __future__ import annotations

import re

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from processor.engine.collector import (
    ERROR_OVERRIDE_APPEND,
    WARNING_APPEND,
    WARNING_ENABLED,
    Collector,
    ExceptionEntry,
    ExceptionInfo,
    ListInfo,
    MacroInfo,
    PluginRequirement,
    PluginVersionInfo,
    RuleInfo,
    RuleUpdate,
    parse_semver,
)
from processor.engine.load_result import Context, ErrorCode, FileResult, RuleLoadError, WarningCode
from processor.engine.priority import parse_priority
from processor.engine.rule_schema import validate_documents

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NULL_TAG = "tag:yaml.org,2002:null"
_RGX_IDENTIFIER = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*")
_RGX_BARESTR = re.compile(r"[^()\"'\s=,]+")
_TRUE = {"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"}
_FALSE = {"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"}

LIST_KEYS = frozenset({"list", "items", "append", "override"})
MACRO_KEYS = frozenset({"macro", "condition", "append", "override"})
RULE_KEYS = frozenset({
    "rule", "condition", "output", "desc", "priority", "source", "enabled", "capture", "capture_duration",
    "warn_evttypes", "skip-if-unknown-filter", "tags", "exceptions", "override", "append",
})
RULE_APPENDABLE = ("condition", "output", "desc", "tags", "exceptions")
RULE_REPLACEABLE = ("condition", "output", "desc", "priority", "tags", "exceptions", "enabled",
                    "warn_evttypes", "skip-if-unknown-filter", "capture", "capture_duration")


def _fail(message: str, ctx: Context) -> RuleLoadError:
    return RuleLoadError(ErrorCode.LOAD_ERR_YAML_VALIDATE, message, ctx)


def _at(ctx: Context, node: Node, item_type: str, item_name: str = "") -> Context:
    m = node.start_mark
    return ctx.child(item_type, item_name, m.line, m.column, m.index)


class _Map:
    """A mapping node's keys (first occurrence wins, as yaml-cpp's node[key])."""

    __slots__ = ("node", "entries")

    def __init__(self, node: MappingNode) -> None:
        self.node = node
        self.entries: dict[str, tuple[Node, Node]] = {}
        for k, v in node.value:
            key = k.value if isinstance(k, ScalarNode) else None
            if isinstance(key, str) and key not in self.entries:
                self.entries[key] = (k, v)

    def get(self, key: str) -> Node | None:
        entry = self.entries.get(key)
        return entry[1] if entry else None

    def __contains__(self, key: str) -> bool:
        return key in self.entries


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL_TAG


def _scalar(item: _Map, key: str, ctx: Context, optional: bool = False) -> tuple[str, Context] | None:
    """decode_val: the scalar text of `key` and its value context."""
    val = item.get(key)
    if val is None:
        if optional:
            return None
        raise _fail(f"Item has no mapping for key '{key}'", ctx)
    if _is_null(val):
        raise _fail(f"Mapping for key '{key}' is empty", ctx)
    vctx = _at(ctx, val, "value for", key)
    if not isinstance(val, ScalarNode):
        raise _fail("Value is not a scalar value", vctx)
    if val.value == "":
        raise _fail("Value must be non-empty", vctx)
    return val.value, vctx


def _string(item: _Map, key: str, ctx: Context) -> str:
    decoded = _scalar(item, key, ctx)
    assert decoded is not None
    return decoded[0]


def _bool(item: _Map, key: str, ctx: Context, optional: bool = False) -> bool | None:
    decoded = _scalar(item, key, ctx, optional)
    if decoded is None:
        return None
    text, vctx = decoded
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _fail("Can't decode YAML scalar value", vctx)


def _uint(item: _Map, key: str, ctx: Context) -> int | None:
    decoded = _scalar(item, key, ctx, optional=True)
    if decoded is None:
        return None
    text, vctx = decoded
    try:
        return int(text, 0)
    except ValueError:
        raise _fail("Can't decode YAML scalar value", vctx) from None


def _sequence(item: _Map, key: str, ctx: Context, optional: bool) -> list[str] | None:
    """decode_seq: a sequence of scalars (list items, tags)."""
    val = item.get(key)
    if val is None:
        if optional:
            return None
        raise _fail(f"Item has no mapping for key '{key}'", ctx)
    vctx = _at(ctx, val, "value for", key)
    if not isinstance(val, SequenceNode):
        raise _fail("Value is not a sequence", vctx)
    out = []
    for v in val.value:
        if not isinstance(v, ScalarNode):
            raise _fail("sequence value is not scalar", _at(vctx, v, "list item"))
        out.append(v.value)
    return out


def _overrides(item: _Map, appendable: tuple[str, ...], replaceable: tuple[str, ...],
               ctx: Context) -> tuple[set[str], set[str]]:
    val = item.get("override")
    if val is None:
        return set(), set()
    octx = _at(ctx, item.node, "overrides")
    append: set[str] = set()
    replace: set[str] = set()
    pairs = val.value if isinstance(val, MappingNode) else []
    for k, v in pairs:
        key = str(k.value)
        op = str(v.value) if isinstance(v, ScalarNode) else ""
        if op == "append":
            if key not in appendable:
                raise _fail(f"Key '{key}' cannot be appended to, use 'replace' instead", _at(octx, k, "overrides", key))
            append.add(key)
        elif op == "replace":
            if key not in replaceable:
                raise _fail(f"Key '{key}' cannot be replaced", _at(octx, k, "overrides", key))
            replace.add(key)
        else:
            allowed = ("append " if key in appendable else "") + ("replace " if key in replaceable else "")
            raise _fail(
                f"Invalid override operation for key '{key}': '{op}'. Allowed values are: {allowed}",
                _at(octx, v, "value for", key),
            )
    return append, replace


def _exception_entry(val: Node, key: str, ctx: Context) -> ExceptionEntry:
    vctx = _at(ctx, val, "value for", key)
    out = ExceptionEntry()
    if isinstance(val, ScalarNode):
        if val.value == "":
            raise _fail("Value must be non-empty", vctx)
        out.item = val.value
    elif isinstance(val, SequenceNode):
        out.is_list = True
        for v in val.value:
            out.items.append(_exception_entry(v, "", _at(vctx, v, "exception")))
    return out


def _exceptions(result: FileResult, item: _Map, ctx: Context, append: bool) -> list[ExceptionInfo] | None:
    exs = item.get("exceptions")
    if exs is None or _is_null(exs):
        return None
    exes_ctx = _at(ctx, exs, "exceptions")
    if not isinstance(exs, SequenceNode):
        raise _fail("Rule exceptions must be a sequence", exes_ctx)
    out: list[ExceptionInfo] = []
    for ex in exs.value:
        tmp = _at(exes_ctx, ex, "exception")
        if not isinstance(ex, MappingNode):
            raise _fail("Rule exception must be a mapping", tmp)
        exm = _Map(ex)
        name = _string(exm, "name", tmp)
        ex_ctx = _at(ctx, ex, "exception", name)
        info = ExceptionInfo(name=name, ctx=ex_ctx)
        if any(prev.name == name for prev in out):
            result.add_warning(WarningCode.LOAD_EXCEPTION_NAME_NOT_UNIQUE,
                               f"Multiple definitions of exception '{name}' in the same rule", ex_ctx)
        fields = exm.get("fields")
        if fields is None:
            if not append:
                raise _fail("Item has no mapping for key 'fields'", ex_ctx)
        else:
            info.fields = _exception_entry(fields, "fields", ex_ctx)
        comps = exm.get("comps")
        if comps is not None:
            info.comps = _exception_entry(comps, "comps", ex_ctx)
        values = exm.get("values")
        if values is not None:
            vals_ctx = _at(ex_ctx, values, "exception values")
            if not isinstance(values, SequenceNode):
                raise _fail("Rule exception values must be a sequence", vals_ctx)
            for v in values.value:
                info.values.append(_exception_entry(v, "", _at(vals_ctx, v, "exception value")))
        elif append:
            result.add_warning(WarningCode.LOAD_APPEND_NO_VALUES, "Overriding/appending exception with no values",
                               ex_ctx)
        out.append(info)
    return out


def _priority(item: _Map, ctx: Context):  # noqa: ANN202 - Priority
    text = _string(item, "priority", ctx)
    prio = parse_priority(text)
    if prio is None:
        raise _fail("Invalid priority", _at(ctx, item.get("priority"), "rule priority"))  # type: ignore[arg-type]
    return prio


def _warn_unknown_keys(result: FileResult, item: _Map, allowed: frozenset[str], ctx: Context) -> None:
    for key, (knode, _v) in item.entries.items():
        if key not in allowed:
            result.add_warning(WarningCode.LOAD_UNKNOWN_KEY, f"Unknown key '{key}'. The key will be ignored.",
                               _at(ctx, knode, "value for", key))


class Reader:
    """Reads one rules file into a collector; returns False at the first error (recorded in the result)."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def read(self, result: FileResult) -> bool:
        ctx = Context.root(result.name)
        try:
            docs = list(yaml.compose_all(result.content, Loader=_Loader))
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            ectx = ctx.child("value for", "", mark.line, mark.column, mark.index) if mark else ctx
            result.add_error(ErrorCode.LOAD_ERR_YAML_PARSE, _yaml_message(exc), ectx)
            return False
        except yaml.YAMLError as exc:
            result.add_error(ErrorCode.LOAD_ERR_YAML_PARSE, str(exc), ctx)
            return False
        result.schema_warnings = validate_documents(docs)
        for doc in docs:
            if doc is None or _is_null(doc):
                continue
            try:
                if not isinstance(doc, (MappingNode, SequenceNode)):
                    raise _fail("Rules content is not yaml", ctx)
                if not isinstance(doc, SequenceNode):
                    raise _fail("Rules content is not yaml array of objects", ctx)
                for item in doc.value:
                    if not _is_null(item):
                        self.read_item(result, item, ctx)
            except RuleLoadError as exc:
                result.add_error(exc.code, exc.message, exc.context)
                return False
        return True

    def read_item(self, result: FileResult, node: Node, parent: Context) -> None:
        if not isinstance(node, MappingNode):
            raise _fail("Unexpected element type. Each element should be a yaml associative array.",
                        _at(parent, node, "rules content item"))
        item = _Map(node)
        if "required_engine_version" in item:
            self._engine_version(item, parent)
        elif "required_plugin_versions" in item:
            self._plugin_versions(item, parent)
        elif "list" in item:
            self._list(result, item, parent)
        elif "macro" in item:
            self._macro(result, item, parent)
        elif "rule" in item:
            self._rule(result, item, parent)
        else:
            result.add_warning(WarningCode.LOAD_UNKNOWN_ITEM, "Unknown top level item",
                               _at(parent, node, "rules content item"))

    def _engine_version(self, item: _Map, parent: Context) -> None:
        ctx = _at(parent, item.node, "required_engine_version")
        text = _string(item, "required_engine_version", ctx)
        if text.isdigit():
            version: tuple[int, int, int] | None = (0, int(text), 0)
        else:
            version = parse_semver(text)
        if version is None:
            raise _fail(f"Unable to parse engine version '{text}' as a semver string. "
                        'Expected "x.y.z" semver format.', ctx)
        self.collector.define_engine_version(version, ctx)

    def _plugin_versions(self, item: _Map, parent: Context) -> None:
        reqs = item.get("required_plugin_versions")
        assert reqs is not None
        ctx = _at(parent, reqs, "required plugin versions")
        if not isinstance(reqs, SequenceNode):
            raise _fail("Value of required_plugin_versions must be a sequence", ctx)
        for plugin in reqs.value:
            tmp = _at(ctx, plugin, "required plugin versions entry")
            if not isinstance(plugin, MappingNode):
                raise _fail("Plugin version must be a mapping", tmp)
            pm = _Map(plugin)
            name = _string(pm, "name", tmp)
            pctx = _at(ctx, plugin, "required plugin versions entry", name)
            info = PluginVersionInfo(ctx=pctx)
            info.alternatives.append(PluginRequirement(name, _string(pm, "version", pctx)))
            alternatives = pm.get("alternatives")
            if alternatives is not None:
                if not isinstance(alternatives, SequenceNode):
                    raise _fail("Value of plugin version alternatives must be a sequence", pctx)
                for alt in alternatives.value:
                    actx = _at(pctx, alt, "required plugin versions alternative")
                    if not isinstance(alt, MappingNode):
                        raise _fail("Plugin version alternative must be a mapping", actx)
                    am = _Map(alt)
                    alt_name = _string(am, "name", actx)
                    actx = _at(pctx, alt, "required plugin versions alternative", alt_name)
                    info.alternatives.append(PluginRequirement(alt_name, _string(am, "version", actx)))
            self.collector.define_plugin_versions(info)

    def _list(self, result: FileResult, item: _Map, parent: Context) -> None:
        name = _string(item, "list", _at(parent, item.node, "list"))
        ctx = _at(parent, item.node, "list", name)
        _warn_unknown_keys(result, item, LIST_KEYS, ctx)
        if not _RGX_BARESTR.fullmatch(name):
            result.add_warning(WarningCode.LOAD_INVALID_LIST_NAME,
                               "List has an invalid name. List names should match a regular expression: "
                               "([^()\"'[:space:]=,]+)", ctx)
        items = _sequence(item, "items", ctx, optional=False) or []
        append = bool(_bool(item, "append", ctx, optional=True))
        if append:
            result.add_warning(WarningCode.LOAD_DEPRECATED_ITEM, WARNING_APPEND, ctx)
        o_append, o_replace = _overrides(item, ("items",), ("items",), ctx)
        if append and (o_append or o_replace):
            raise _fail(ERROR_OVERRIDE_APPEND, ctx)
        info = ListInfo(name=name, ctx=ctx, items=items)
        if append or "items" in o_append:
            self.collector.append_list(info)
        else:
            self.collector.define_list(info)

    def _macro(self, result: FileResult, item: _Map, parent: Context) -> None:
        name = _string(item, "macro", _at(parent, item.node, "macro"))
        ctx = _at(parent, item.node, "macro", name)
        _warn_unknown_keys(result, item, MACRO_KEYS, ctx)
        if not _RGX_IDENTIFIER.fullmatch(name):
            result.add_warning(WarningCode.LOAD_INVALID_MACRO_NAME,
                               "Macro has an invalid name. Macro names should match a regular expression: "
                               "([a-zA-Z]+[a-zA-Z0-9_]*)", ctx)
        cond = _string(item, "condition", ctx)
        cond_node = item.get("condition")
        assert cond_node is not None
        info = MacroInfo(name=name, ctx=ctx, cond=cond, cond_ctx=_at(ctx, cond_node, "macro condition"))
        append = bool(_bool(item, "append", ctx, optional=True))
        if append:
            result.add_warning(WarningCode.LOAD_DEPRECATED_ITEM, WARNING_APPEND, ctx)
        o_append, o_replace = _overrides(item, ("condition",), ("condition",), ctx)
        if append and (o_append or o_replace):
            raise _fail(ERROR_OVERRIDE_APPEND, ctx)
        if append or "condition" in o_append:
            self.collector.append_macro(info)
        else:
            self.collector.define_macro(info)

    def _rule(self, result: FileResult, item: _Map, parent: Context) -> None:
        name = _string(item, "rule", _at(parent, item.node, "rule"))
        ctx = _at(parent, item.node, "rule", name)
        _warn_unknown_keys(result, item, RULE_KEYS, ctx)
        has_append_flag = bool(_bool(item, "append", ctx, optional=True))
        if has_append_flag:
            result.add_warning(WarningCode.LOAD_DEPRECATED_ITEM, WARNING_APPEND, ctx)
        o_append, o_replace = _overrides(item, RULE_APPENDABLE, RULE_REPLACEABLE, ctx)
        if has_append_flag and (o_append or o_replace):
            raise _fail(ERROR_OVERRIDE_APPEND, ctx)
        if o_append or o_replace:
            self._rule_overrides(result, item, name, ctx, o_append, o_replace)
        elif has_append_flag:
            upd = RuleUpdate(name=name, ctx=ctx)
            if "condition" in item:
                upd.cond = _string(item, "condition", ctx)
            if "exceptions" in item:
                upd.exceptions = _exceptions(result, item, ctx, append=True)
            self.collector.append_rule(upd)
        elif not any(k in item for k in ("condition", "output", "desc", "priority")):
            enabled = _bool(item, "enabled", ctx)
            result.add_warning(WarningCode.LOAD_DEPRECATED_ITEM, WARNING_ENABLED, ctx)
            self.collector.enable_rule(name, bool(enabled), ctx)
        else:
            self.collector.define_rule(self._new_rule(result, item, name, ctx), result)

    def _new_rule(self, result: FileResult, item: _Map, name: str, ctx: Context) -> RuleInfo:
        info = RuleInfo(name=name, ctx=ctx)
        info.cond = _string(item, "condition", ctx)
        info.cond_ctx = _at(ctx, item.get("condition"), "rule condition")  # type: ignore[arg-type]
        info.output = _string(item, "output", ctx).strip()
        info.output_ctx = _at(ctx, item.get("output"), "rule output")  # type: ignore[arg-type]
        info.desc = _string(item, "desc", ctx)
        info.priority = _priority(item, ctx)
        source = _scalar(item, "source", ctx, optional=True)
        if source is not None:
            info.source = source[0]
        for key, attr in (("enabled", "enabled"), ("warn_evttypes", "warn_evttypes"),
                          ("skip-if-unknown-filter", "skip_if_unknown_filter"), ("capture", "capture")):
            value = _bool(item, key, ctx, optional=True)
            if value is not None:
                setattr(info, attr, value)
        duration = _uint(item, "capture_duration", ctx)
        if duration is not None:
            info.capture_duration = duration
        info.tags = set(_sequence(item, "tags", ctx, optional=True) or ())
        info.exceptions = _exceptions(result, item, ctx, append=False) or []
        return info

    def _rule_overrides(self, result: FileResult, item: _Map, name: str, ctx: Context,
                        o_append: set[str], o_replace: set[str]) -> None:
        expected = {k for k in RULE_APPENDABLE + RULE_REPLACEABLE if k in item}

        def wanted(ops: set[str], kind: str, key: str) -> bool:
            if key not in ops:
                return False
            if key not in expected:
                raise _fail(f"An {kind} override for '{key}' was specified but '{key}' is not defined", ctx)
            expected.discard(key)
            return True

        if o_append:
            upd = RuleUpdate(name=name, ctx=ctx)
            if wanted(o_append, "append", "condition"):
                upd.cond = _string(item, "condition", ctx)
            if wanted(o_append, "append", "exceptions"):
                upd.exceptions = _exceptions(result, item, ctx, append=True)
            if wanted(o_append, "append", "output"):
                upd.output = _string(item, "output", ctx)
            if wanted(o_append, "append", "desc"):
                upd.desc = _string(item, "desc", ctx)
            if wanted(o_append, "append", "tags"):
                upd.tags = set(_sequence(item, "tags", ctx, optional=True) or ())
            self.collector.append_rule(upd)
        if o_replace:
            upd = RuleUpdate(name=name, ctx=ctx)
            if wanted(o_replace, "replace", "condition"):
                upd.cond = _string(item, "condition", ctx)
            if wanted(o_replace, "replace", "exceptions"):
                upd.exceptions = _exceptions(result, item, ctx, append=False) or []
            if wanted(o_replace, "replace", "output"):
                upd.output = _string(item, "output", ctx)
            if wanted(o_replace, "replace", "desc"):
                upd.desc = _string(item, "desc", ctx)
            if wanted(o_replace, "replace", "tags"):
                upd.tags = set(_sequence(item, "tags", ctx, optional=True) or ())
            if wanted(o_replace, "replace", "priority"):
                upd.priority = _priority(item, ctx)
            for key, attr in (("enabled", "enabled"), ("warn_evttypes", "warn_evttypes"),
                              ("skip-if-unknown-filter", "skip_if_unknown_filter"), ("capture", "capture")):
                if wanted(o_replace, "replace", key):
                    setattr(upd, attr, _bool(item, key, ctx))
            if wanted(o_replace, "replace", "capture_duration"):
                upd.capture_duration = _uint(item, "capture_duration", ctx)
            self.collector.replace_rule(upd)
        for key in sorted(expected):
            knode = item.entries[key][0]
            raise _fail(f"Unexpected key '{key}': no corresponding entry under 'override' is defined.",
                        _at(ctx, knode, "overrides", key))


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    """A one-line YAML syntax message naming the place, like yaml-cpp's "yaml-cpp: error at line L, column C: ..."."""
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    if mark is None:
        return problem
    return f"yaml-cpp: error at line {mark.line + 1}, column {mark.column + 1}: {problem}"
