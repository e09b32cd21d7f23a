"""Compiles condition trees (macros already expanded) into generated Python functions.

`compile_filter` makes one function per condition; `compile_ruleset` one function for all the rules of
an event type, so field reads and repeated macros are shared between rules. Generated code reads each
event key at most once, lazily, into a local; short-circuits `and`/`or` like Python does; and compares
against constants converted to the field's type when the rule was loaded. A check on a missing value
is false, `!=` included; only `not` inverts. `.source` holds the generated code for debugging.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from processor.engine.ast import (
    And,
    Check,
    FieldRef,
    FieldValue,
    Identifier,
    ListValue,
    Node,
    Not,
    Or,
    StrValue,
    Transformer,
    as_string,
)
from processor.engine.evttypes import SYSCALL_EVENT_TYPES
from processor.engine.fields import (
    BUFFER_TYPES,
    IP_TYPES,
    NUMERIC_TYPES,
    STRING_TYPES,
    FieldDef,
    lookup_field,
    split_dotted,
)
from processor.engine.operators import (
    LIST_OPS,
    coercer,
    comparable_error,
    convert_constant,
    dynamic_predicate,
    glob_regex,
    list_coercer,
    modifier_predicate,
    parse_number,
    scalar_predicate,
    type_family,
)
from processor.engine.transformers import STRING_INPUT, concat, getopt, join, single

Mode = Literal["scalar", "any", "list"]

# Boolean nesting at which a subtree moves into its own inner function (Python's parser caps nesting).
_SPLIT_DEPTH = 40
# Self and parent keys behind ancestor fields, used when the event has no "proc.aname[N]" key.
_ANCESTOR_KEYS = {
    "proc.aname": ("proc.name", "proc.pname"),
    "proc.aexe": ("proc.exe", "proc.pexe"),
    "proc.aexepath": ("proc.exepath", "proc.pexepath"),
    "proc.acmdline": ("proc.cmdline", "proc.pcmdline"),
    "proc.apid": ("proc.pid", "proc.ppid"),
}


class FilterCompileError(ValueError):
    """A condition libsinsp's filter compiler rejects (unknown field, bad operator or value)."""

    def __init__(self, message: str, pos: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


@dataclass(frozen=True)
class CompiledFilter:
    match: Callable[[Any], bool]
    fields: frozenset[str]
    source: str

    def __call__(self, event: Any) -> bool:
        return self.match(event)


@dataclass(frozen=True)
class _Value:
    """A compiled value: Python expression `code`, the local holding it (`var`, plain fields only)."""

    code: str
    type: str
    mode: Mode
    var: str | None = None


_SENTINEL = object()
_CONSTANTS = ("True", "False")


@dataclass(frozen=True)
class _Merged:
    """Code for a merged run of checks, with the field locals it certainly reads."""

    code: str
    must: frozenset[str]


class _NoType:
    """Stands for "no value is already of the right type": every read goes through the converter."""


_PYTHON_TYPE: dict[str, type] = {
    **{t: str for t in STRING_TYPES}, **{t: int for t in NUMERIC_TYPES if t != "double"}, "double": float,
    "bool": bool, "bytebuf": bytes,
}


class _Compiler:
    def __init__(self, source: str, inline_reads: bool = True, event_types: frozenset[str] | None = None) -> None:
        self.source = source
        self.event_types = event_types
        self.folded: dict[str, str] = {}
        self.loaded: frozenset[str] = frozenset()
        self.last_must: frozenset[str] = frozenset()
        self.memo_must: dict[str, frozenset[str]] = {}
        # inline reads save a call per field and event; rulesets share reads, so they prefer short code
        self.inline_reads = inline_reads
        self.consts: dict[str, Any] = {"_U": _SENTINEL}
        self.slots: dict[str, str] = {}  # reader identity -> local variable
        self.keys: set[str] = set()
        self.source_code = ""
        self.subfunctions: list[str] = []
        self._ids = itertools.count()
        # subtrees that occur more than once (expanded macros): evaluated once per event into `mN`
        self.texts: dict[int, str] = {}
        self.shared: set[str] = set()
        self.memos: dict[str, str] = {}
        self.memo_code: dict[str, str] = {}

    def find_shared(self, roots: list[Node]) -> None:
        """Canonical text of every boolean subtree, and which ones repeat (the same macro used twice)."""
        counts: dict[str, int] = {}

        def visit(node: Node) -> str:
            if isinstance(node, And | Or):
                op = " and " if isinstance(node, And) else " or "
                text = "(" + op.join(visit(c) for c in node.children) + ")"
            elif isinstance(node, Not):
                text = "not " + visit(node.child)
            else:
                return as_string(node)
            self.texts[id(node)] = text
            counts[text] = counts.get(text, 0) + 1
            return text

        for root in roots:
            visit(root)
        self.shared = {text for text, n in counts.items() if n > 1}

    def const(self, value: Any, prefix: str = "_c") -> str:
        name = f"{prefix}{next(self._ids)}"
        self.consts[name] = value
        return name

    # -- boolean structure ------------------------------------------------------------------------

    def node(self, node: Node, depth: int = 0) -> str:
        """Code for a subtree. `self.loaded` holds the field locals certainly read before this point
        (evaluation is left to right), which are then used bare; afterwards `self.last_must` holds the
        locals this subtree certainly reads whatever its outcome."""
        key = self.texts.get(id(node)) if not isinstance(node, Check) else None
        if key is not None and key in self.shared:
            if key in self.folded:
                self.last_must = frozenset()
                return self.folded[key]
            var = self.memos.get(key)
            if var is None:
                context, self.loaded = self.loaded, frozenset()  # memo code must hold in any context
                code = self._node(node, depth)
                self.loaded = context
                if code in _CONSTANTS:
                    self.folded[key] = code
                    self.last_must = frozenset()
                    return code
                var = self.memos[key] = f"m{len(self.memos)}"
                self.memo_code[var] = code
                self.memo_must[var] = self.last_must
            # once mN is set its code has run, so its certain reads have happened
            self.last_must = self.memo_must[var]
            return f"({var} if {var} is not _U else ({var} := {self.memo_code[var]}))"
        return self._node(node, depth)

    def _node(self, node: Node, depth: int) -> str:
        if depth and depth % _SPLIT_DEPTH == 0 and not isinstance(node, Check):
            body = self.node(node, depth + 1)
            if body in _CONSTANTS:
                return body
            name = f"_s{next(self._ids)}"
            self.subfunctions.append(f"def {name}():\n    nonlocal {{slots}}\n    return {body}")
            return f"{name}()"
        if isinstance(node, And | Or):
            # constants come from evt.type checks folded for a ruleset's event type
            absorbing, neutral = ("False", "True") if isinstance(node, And) else ("True", "False")
            base = self.loaded
            parts: list[str] = []
            first_must: frozenset[str] = frozenset()
            try:
                for child in self.merge_runs(node):
                    if isinstance(child, _Merged):
                        code, self.last_must = child.code, child.must
                    else:
                        code = self.node(child, depth + 1)
                    if code == absorbing:
                        self.last_must = frozenset()  # a constant evaluates nothing
                        return absorbing
                    if code != neutral:
                        if not parts:
                            first_must = self.last_must
                        parts.append(code)
                        self.loaded = self.loaded | self.last_must
            finally:
                self.loaded = base
            self.last_must = first_must
            if not parts:
                self.last_must = frozenset()
                return neutral
            op = " and " if isinstance(node, And) else " or "
            return parts[0] if len(parts) == 1 else "(" + op.join(parts) + ")"
        if isinstance(node, Not):
            code = self.node(node.child, depth + 1)
            if code in _CONSTANTS:
                self.last_must = frozenset()
                return "False" if code == "True" else "True"
            return f"(not {code})"
        if isinstance(node, Check):
            self.last_must = frozenset()
            return self.check(node)
        if isinstance(node, Identifier):
            raise FilterCompileError(f"Undefined macro '{node.name}' used in filter.", node.pos)
        raise FilterCompileError(f"unexpected node {node!r}", 0)

    def bare(self, value: _Value) -> _Value:
        """A field already read at this point is used as its local; records it as read by this check."""
        if value.var is None:
            return value
        self.last_must = self.last_must | {value.var}
        if value.var in self.loaded:
            return _Value(value.var, value.type, value.mode, value.var)
        return value

    def merge_runs(self, node: And | Or) -> list[Node | _Merged]:
        """Adjacent checks of one field with one operator become one test: `or` of `fd.name startswith`
        checks is `startswith((a, b, ...))`, `and not` of them is `not startswith(...)`; `=`/`in` runs are
        one set lookup. Falco's macros are full of such runs; the result is the same, evaluated in C."""
        negated = isinstance(node, And)
        out: list[Node | _Merged] = []
        run: list[Check] = []
        run_key: tuple[Any, ...] | None = None

        def flush() -> None:
            if len(run) > 1:
                code = self.merged_check(run)
                if code is not None:
                    out.append(_Merged(f"(not {code})" if negated else code, self.last_must))
                    return
            out.extend(Not(c, pos=c.pos) if negated else c for c in run)

        for child in node.children:
            check = child.child if negated and isinstance(child, Not) else (None if negated else child)
            key = _merge_key(check) if isinstance(check, Check) else None
            if key is None or key != run_key:
                flush()
                run = []
                run_key = key
            if key is None:
                out.append(child)
            else:
                assert isinstance(check, Check)
                run.append(check)
        flush()
        return out

    def merged_check(self, run: list[Check]) -> str | None:
        """One test for checks of the same field and operator family, or None to compile them one by one."""
        first = run[0]
        assert isinstance(first.field, FieldRef)
        try:
            self.last_must = frozenset()
            lhs = self.bare(self.field(first.field))
        except FilterCompileError:
            return None
        family = _merge_key(first)[1]  # type: ignore[index]
        if lhs.mode != "scalar" or lhs.var is None or lhs.type in ("dyn", "ipnet", "ipv4net", "ipv6net"):
            return None
        if family != "eq" and lhs.type not in STRING_TYPES:
            return None
        try:
            values = [convert_constant(t, lhs.type, c.op) for c in run for t in _constant_texts(c.value)]
        except ValueError:
            return None
        if family == "eq":
            return f"({lhs.code} in {self.const(frozenset(values))})"
        return f"({lhs.code} is not None and {lhs.var}.{family}({self.const(tuple(values))}))"

    # -- values -----------------------------------------------------------------------------------

    def load(self, identity: str, reader: Callable[[Any], Any]) -> str:
        """Expression reading a value once per event into a local, then reusing the local."""
        var = self.slots.get(identity)
        if var is None:
            var = f"f{len(self.slots)}"
            self.slots[identity] = var
            self.consts[f"_r{var}"] = reader
        return f"({var} if {var} is not _U else ({var} := _r{var}(get)))"

    def field(self, ref: FieldRef, rhs: bool = False, in_transformer: bool = False,
              type_override: str | None = None) -> _Value:
        fdef, arg, dotted = self.resolve(ref)
        if rhs and fdef.no_rhs:
            raise FilterCompileError(f"field '{ref.name}' cannot be used as a right-hand side value", ref.pos)
        if in_transformer and fdef.no_transformer:
            raise FilterCompileError(f"field '{ref.name}' cannot be used with transformers", ref.pos)
        type_ = type_override or fdef.type
        key = ref.name if dotted or arg is None else f"{ref.name}[{arg}]"
        if fdef.source_keys and arg is None:
            keys = (key, *fdef.source_keys)
            self.keys.update(keys)
            return self._loaded(key, _either_reader(key, fdef.source_keys, _list_converter(type_)), type_, "any")
        self.keys.add(key)
        if (fdef.any_ancestor or fdef.any_value) and arg is None:
            return self._loaded(key, _plain_reader(key, _list_converter(type_)), type_, "any")
        if fdef.is_list and arg is None:
            return self._loaded(key, _plain_reader(key, _list_converter(type_)), type_, "list")
        if fdef.any_ancestor and fdef.arg_kind == "index" and ref.name in _ANCESTOR_KEYS and arg is not None:
            reader = _ancestor_reader(key, ref.name, int(arg), coercer(type_))
            if self.inline_reads:  # the event's own `proc.aname[N]` read inline, the fallbacks by the reader
                return self._inline_loaded(key, type_, fallback=reader)
            return self._loaded(key, reader, type_, "scalar")
        if not self.inline_reads:
            return self._loaded(key, _plain_reader(key, _converter(type_)), type_, "scalar")
        return self._inline_loaded(key, type_)

    def _inline_loaded(self, key: str, type_: str, fallback: Callable[[Any], Any] | None = None) -> _Value:
        """A plain field read inline: `get(key)`, converted only when not already the field's Python type.
        With a `fallback` reader, any other value (None included) is left to `fallback(get, value)`."""
        identity = f"inline:{type_}:{key}"
        var = self.slots.get(identity)
        if var is None:
            var = f"f{len(self.slots)}"
            self.slots[identity] = var
            self.consts[f"_k{var}"] = key
            self.consts[f"_v{var}"] = fallback if fallback is not None else _converter(type_)
            self.consts[f"_t{var}"] = _PYTHON_TYPE.get(type_, _NoType)
        if fallback is not None:
            read = f"({var} if ({var} := get(_k{var})).__class__ is _t{var} else ({var} := _v{var}(get, {var})))"
        else:
            read = (f"({var} if ({var} := get(_k{var})).__class__ is _t{var} or {var} is None "
                    f"else ({var} := _v{var}({var})))")
        code = f"({var} if {var} is not _U else {read})"
        return _Value(code, type_, "scalar", var)

    def _loaded(self, key: str, reader: Callable[[Any], Any], type_: str, mode: Mode) -> _Value:
        identity = f"{mode}:{type_}:{key}"
        code = self.load(identity, reader)
        return _Value(code, type_, mode, self.slots[identity])

    def resolve(self, ref: FieldRef) -> tuple[FieldDef, str | None, bool]:
        """Field definition, argument and whether the argument was written dotted (evt.arg.flags)."""
        fdef = lookup_field(ref.name, self.source)
        if fdef is None:
            shown = ref.name if ref.arg is None else f"{ref.name}[{ref.arg}]"
            raise FilterCompileError(f"filter_check called with nonexistent field {shown}", ref.pos)
        arg = ref.arg
        dotted = fdef.name != ref.name
        if dotted:
            split = split_dotted(ref.name, self.source)
            assert split is not None
            if arg is not None:
                raise FilterCompileError(f"filter_check called with nonexistent field {ref.name}[{arg}]", ref.pos)
            arg = split[1]
        if arg is not None and fdef.arg == "none":
            raise FilterCompileError(f"filter_check called with nonexistent field {ref.name}[{arg}]", ref.pos)
        if arg is None and fdef.arg == "required":
            raise FilterCompileError(
                f"filter '{ref.name}': {ref.name} requires an argument but none provided", ref.pos)
        if arg is not None and fdef.arg_kind == "index" and not (dotted and fdef.dotted_arg):
            try:
                parse_number(arg, "int32")
            except ValueError as exc:
                raise FilterCompileError(str(exc), ref.pos) from None
        return fdef, arg, dotted

    def expr(self, node: FieldRef | Transformer, rhs: bool = False, in_transformer: bool = False) -> _Value:
        if isinstance(node, FieldRef):
            return self.field(node, rhs=rhs, in_transformer=in_transformer)
        return self.transformer(node)

    def transformer(self, node: Transformer) -> _Value:
        name = node.name
        if node.index is not None and name != "getopt":
            raise FilterCompileError(f"transformer '{name}' does not accept an argument", node.pos)
        if name in ("tolower", "toupper", "b64", "basename", "len"):
            arg = node.args[0]
            assert isinstance(arg, FieldRef | Transformer)
            inner = self.expr(arg, in_transformer=True)
            ok = inner.type in STRING_TYPES or (name in ("b64", "len") and inner.type in BUFFER_TYPES)
            if name == "len" and inner.mode == "list":
                ok = True
            if not ok:
                raise FilterCompileError(
                    f"transformer '{name}' is not supported on field type '{inner.type}'", node.pos)
            fn = self.const(single(name, inner.mode != "scalar"), "_t")
            if name == "len":
                return _Value(f"{fn}({inner.code})", "uint64", "scalar")
            out_type = "charbuf" if name == "b64" else inner.type
            return _Value(f"{fn}({inner.code})", out_type, inner.mode)
        if name == "concat":
            if len(node.args) < 2:
                raise FilterCompileError("transformer 'concat' requires at least 2 arguments", node.pos)
            parts = [self.transformer_arg(a, name) for a in node.args]
            return _Value(f"{self.const(concat, '_t')}({', '.join(parts)})", "charbuf", "scalar")
        if name == "join":
            if len(node.args) < 2 or not isinstance(node.args[0], StrValue):
                raise FilterCompileError(
                    "transformer 'join' requires a separator string and a list argument", node.pos)
            parts = [self.transformer_arg(a, name) for a in node.args]
            return _Value(f"{self.const(join, '_t')}({', '.join(parts)})", "charbuf", "scalar")
        if name == "getopt":
            if len(node.args) != 2 or not isinstance(node.args[1], StrValue) or not node.index:
                raise FilterCompileError(
                    "transformer 'getopt' requires an argument list, an option string and an [option]", node.pos)
            args = self.transformer_arg(node.args[0], name)
            optstring = self.const(node.args[1].text)
            option = self.const(node.index)
            return _Value(f"{self.const(getopt, '_t')}({args}, {optstring}, {option})", "charbuf", "scalar")
        raise FilterCompileError(f"unknown transformer '{name}'", node.pos)

    def transformer_arg(self, arg: FieldRef | Transformer | StrValue | ListValue, transformer: str) -> str:
        if isinstance(arg, StrValue):
            return self.const(arg.text)
        if isinstance(arg, ListValue):
            parts = [self.transformer_arg(item, transformer) for item in arg.items]
            return "[" + ", ".join(parts) + "]"
        value = self.expr(arg, in_transformer=True)
        if value.type not in STRING_INPUT and value.mode == "scalar" and transformer == "concat":
            raise FilterCompileError(
                f"transformer '{transformer}' is not supported on field type '{value.type}'", arg.pos)
        return value.code

    # -- checks -----------------------------------------------------------------------------------

    def check(self, check: Check) -> str:
        self.validate_event_type(check)
        folded = self.fold_event_type(check)
        if folded is not None:
            return folded
        lhs = self.expr(check.field)
        if lhs.type == "dyn" and isinstance(check.field, FieldRef):
            # evt.rawarg.X: typed by its parameter; numeric constants compare numbers, others strings
            texts = _constant_texts(check.value)
            numeric = bool(texts) and all(_is_int(t) for t in texts)
            lhs = self.field(check.field, type_override="int64" if numeric else "charbuf")
        lhs = self.bare(lhs)
        op = check.op
        err = comparable_error(op, lhs.type, lhs.mode == "list")
        if err is not None:
            raise FilterCompileError(err, check.pos)
        if op == "exists":
            return f"({lhs.code} is not None)"
        value = check.value
        if isinstance(value, FieldValue):
            return self.dynamic_check(check, lhs, value)
        assert value is not None
        texts = [value.text] if isinstance(value, StrValue) else [
            item.text for item in value.items if isinstance(item, StrValue)]
        if isinstance(value, ListValue) and op not in LIST_OPS and check.modifier is None:
            raise FilterCompileError(f"'{op}' operator does not accept a list of values", value.pos)
        if op == "pmatch":
            rhs: Any = tuple(texts)
        else:
            try:
                converted = [convert_constant(t, lhs.type, op) for t in texts]
            except ValueError as exc:
                raise FilterCompileError(str(exc), value.pos) from None
            rhs = tuple(converted) if (op in LIST_OPS or check.modifier) else converted[0]
        if check.modifier is not None:
            if lhs.type in IP_TYPES and op not in ("=", "==", "!="):
                raise FilterCompileError(
                    f"filter error: '{op}' operator not supported for ip address and network filters", check.pos)
            try:
                pred = modifier_predicate(op, lhs.type, check.modifier, list(rhs))
            except ValueError as exc:
                raise FilterCompileError(str(exc), value.pos) from None
            return self.predicate_call(lhs, pred, op)
        inline = self.inline(lhs, op, rhs)
        if inline is not None:
            return inline
        try:
            pred = scalar_predicate(op, lhs.type, rhs)
        except ValueError as exc:
            raise FilterCompileError(str(exc), value.pos) from None
        return self.predicate_call(lhs, pred, op)

    def validate_event_type(self, check: Check) -> None:
        """libsinsp refuses `evt.type` constants that name no event ("unknown event type X")."""
        field, value = check.field, check.value
        if (self.source != "syscall" or not isinstance(field, FieldRef) or field.name != "evt.type"
                or field.arg is not None or check.op not in ("=", "==", "!=", "in", "intersects")):
            return
        for text in _constant_texts(value):
            if text not in SYSCALL_EVENT_TYPES:
                raise FilterCompileError(f"unknown event type {text}", value.pos if value is not None else check.pos)

    def fold_event_type(self, check: Check) -> str | None:
        """In a ruleset for given event types, `evt.type` checks that hold (or fail) for all of them are
        known at compile time."""
        field, value = check.field, check.value
        if (self.event_types is None or not isinstance(field, FieldRef) or field.name != "evt.type"
                or field.arg is not None or check.modifier is not None):
            return None
        if check.op == "exists":
            return "True"
        if check.op not in ("=", "==", "!=", "in", "intersects") or not isinstance(value, StrValue | ListValue):
            return None
        if isinstance(value, ListValue) != (check.op in ("in", "intersects")):
            return None
        names = frozenset(_constant_texts(value))
        if self.event_types <= names:
            hit = True
        elif not self.event_types & names:
            hit = False
        else:
            return None
        return str(not hit if check.op == "!=" else hit)

    def inline(self, lhs: _Value, op: str, rhs: Any) -> str | None:
        """Plain Python for the common checks on a single value; None to use a predicate."""
        if lhs.mode != "scalar" or lhs.var is None or lhs.type in ("ipnet", "ipv4net", "ipv6net"):
            return None
        load, var = lhs.code, lhs.var
        if op in ("=", "=="):
            return f"({load} == {self.const(rhs)})"
        if op in ("in", "intersects"):
            return f"({load} in {self.const(frozenset(rhs))})"
        if lhs.type in IP_TYPES:
            return f"({load} is not None and {var} != {self.const(rhs)})" if op == "!=" else None
        simple = {"!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
        if op in simple:
            return f"({load} is not None and {var} {simple[op]} {self.const(rhs)})"
        if op in ("contains", "bcontains"):
            return f"({load} is not None and {self.const(rhs)} in {var})"
        if op in ("startswith", "bstartswith", "endswith") and isinstance(rhs, str | bytes) and rhs:
            # a slice compared: values are of the field's type here, where str.startswith's argument parsing
            # costs more than slicing (an empty affix keeps the method: `s[-0:]` is all of `s`)
            part = f"{var}[:{len(rhs)}]" if op != "endswith" else f"{var}[-{len(rhs)}:]"
            return f"({load} is not None and {part} == {self.const(rhs)})"
        if op in ("startswith", "bstartswith"):
            return f"({load} is not None and {var}.startswith({self.const(rhs)}))"
        if op == "endswith":
            return f"({load} is not None and {var}.endswith({self.const(rhs)}))"
        if lhs.type in STRING_TYPES and op in ("glob", "iglob", "regex", "icontains"):
            # a compiled pattern's own method, called from the generated code (no predicate in between)
            if op == "icontains":
                return f"({load} is not None and {self.const(rhs.lower())} in {var}.lower())"
            try:
                pattern = glob_regex(rhs, casefold=op == "iglob") if op != "regex" else re.compile(rhs, re.DOTALL)
            except re.error:
                return None  # the predicate reports it
            return f"({load} is not None and {self.const(pattern.fullmatch, '_g')}({var}) is not None)"
        return None

    def predicate_call(self, lhs: _Value, pred: Callable[[Any], bool], op: str) -> str:
        if lhs.mode == "scalar":
            if lhs.var is not None:
                return f"({lhs.code} is not None and {self.const(pred, '_p')}({lhs.var}))"
            return f"{self.const(_guard(pred), '_p')}({lhs.code})"
        if lhs.mode == "list" and op == "in":
            return f"{self.const(_all_of(pred), '_p')}({lhs.code})"
        return f"{self.const(_any_of(pred), '_p')}({lhs.code})"

    def dynamic_check(self, check: Check, lhs: _Value, value: FieldValue) -> str:
        rhs = self.expr(value.field, rhs=True)
        if type_family(lhs.type) != type_family(rhs.type) and "dyn" not in (lhs.type, rhs.type):
            raise FilterCompileError(
                f"left and right fields of '{check.op}' have incompatible types: '{lhs.type}' and '{rhs.type}'",
                value.pos)
        try:
            pred = dynamic_predicate(check.op, lhs.type)
        except ValueError as exc:
            raise FilterCompileError(str(exc), check.pos) from None
        fn = self.const(_dynamic(pred, lhs.mode, check.op), "_p")
        return f"{fn}({lhs.code}, {rhs.code})"

    # -- assembly ---------------------------------------------------------------------------------

    def build(self, node: Node) -> tuple[Callable[[Any], bool], str]:
        self.find_shared([node])
        body = self.node(node)
        ret = f"return {body}" if body.startswith("(") or body in _CONSTANTS else f"return bool({body})"
        functions = self.assemble({"_match": [ret]})
        return functions["_match"], self.source_code

    def assemble(self, bodies: dict[str, list[str]], params: str = "ev") -> dict[str, Any]:
        """Defines each function (name -> body lines) in one namespace whose globals are the compiled constants.

        Constants are globals, not closure cells of a factory: CPython copies every cell of a closure into each
        call's frame and releases them again when it returns, which for a ruleset's hundreds of constants cost a
        quarter of an open's evaluation; a global read is one cached dictionary lookup, and only where it runs."""
        local_vars = list(self.slots.values()) + list(self.memos.values())
        nonlocal_list = ", ".join(local_vars) if local_vars else "get"
        # the per-event locals start unset as parameter defaults: CPython fills those in C on each call,
        # where `f0 = f1 = ... = _U` would run two bytecodes per local (callers pass only `params`)
        defaults = "".join(f", {var}=_U" for var in local_vars)
        lines: list[str] = []
        for name, body in bodies.items():
            lines += [f"def {name}({params}{defaults}):", "    get = ev.get"]
            for sub in self.subfunctions:
                lines += ["    " + line for line in sub.replace("{slots}", nonlocal_list).splitlines()]
            if not self.subfunctions:
                body = _unchecked_first_uses(body, local_vars)
            lines += ["    " + line for line in body]
        self.source_code = "\n".join(lines) + "\n"
        namespace: dict[str, Any] = dict(self.consts)
        exec(compile(self.source_code, "<peregrine-condition>", "exec"), namespace)  # noqa: S102 - generated
        return {name: namespace[name] for name in bodies}


def _unchecked_first_uses(body: list[str], local_vars: list[str]) -> list[str]:
    """Without inner functions the body runs top to bottom and left to right (the only construct out of
    text order is the read's own `a if c else b`), so where a local is first mentioned it is certainly
    still unset: `(v if v is not _U else X)` there becomes `(X)`, one test less per read."""
    text = "\n".join(body)
    for var in local_vars:
        first = re.search(rf"\b{var}\b", text)
        guarded = f"({var} if {var} is not _U else "
        if first is not None and text.startswith(guarded, first.start() - 1):
            start = first.start() - 1
            text = text[:start] + "(" + text[start + len(guarded):]
    return text.split("\n")


def _merge_key(check: Check) -> tuple[FieldRef, str] | None:
    """Checks that can share one test: same plain field, `startswith`, `endswith` or `=`/`in` constants."""
    field = check.field
    if not isinstance(field, FieldRef) or check.modifier is not None or field.name in ("evt.type", "syscall.type"):
        return None
    if check.op in ("startswith", "endswith") and isinstance(check.value, StrValue):
        return (field, check.op)
    if (check.op in ("=", "==") and isinstance(check.value, StrValue)) or (
            check.op in ("in", "intersects") and isinstance(check.value, ListValue)):
        return (field, "eq")
    return None


def _constant_texts(value: Any) -> list[str]:
    if isinstance(value, StrValue):
        return [value.text]
    if isinstance(value, ListValue):
        return [i.text for i in value.items if isinstance(i, StrValue)]
    return []


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


_MEMO_LIMIT = 4096  # distinct values remembered per converter before it starts over


def _memoized(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Parsing an address is the one costly conversion, and the same few addresses recur (a node's peers,
    its pods' networks): remember the result per text (or list of texts); other values are converted."""
    cache: dict[Any, Any] = {}

    def memo(value: Any) -> Any:
        if value.__class__ is str:
            key: Any = value
        elif value.__class__ is list and all(v.__class__ is str for v in value):
            key = tuple(value)
        else:
            return convert(value)
        found = cache.get(key, _SENTINEL)
        if found is _SENTINEL:
            if len(cache) >= _MEMO_LIMIT:
                cache.clear()
            found = cache[key] = convert(value)
        return found

    return memo


def _converter(type_: str) -> Callable[[Any], Any]:
    return _memoized(coercer(type_)) if type_ in IP_TYPES else coercer(type_)


def _list_converter(type_: str) -> Callable[[Any], Any]:
    return _memoized(list_coercer(type_)) if type_ in IP_TYPES else list_coercer(type_)


def _plain_reader(key: str, convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def read(get: Any) -> Any:
        return convert(get(key))

    return read


def _either_reader(key: str, keys: tuple[str, ...], convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """fd.ip & co.: the field itself if the event has it, else both ends of the connection."""

    def read(get: Any) -> Any:
        direct = get(key)
        if direct is not None:
            return convert(direct)
        values = [v for v in (get(k) for k in keys) if v is not None]
        return convert(values) if values else None

    return read


def _ancestor_reader(key: str, name: str, level: int, convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """proc.aname[N]: its own key, else proc.name (N=0), proc.pname (N=1) or the ancestors list."""
    self_key, parent_key = _ANCESTOR_KEYS[name]

    def read(get: Any, v: Any = _SENTINEL) -> Any:
        """`v` is the value of `key` when the caller has read it already."""
        if v is _SENTINEL:
            v = get(key)
        if v is None:
            if level == 0:
                v = get(self_key)
            elif level == 1:
                v = get(parent_key)
            if v is None and level >= 1:
                ancestors = get(name)
                if isinstance(ancestors, list | tuple) and len(ancestors) >= level:
                    v = ancestors[level - 1]
        return convert(v)

    return read


def _guard(pred: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is not None and pred(v)


def _any_of(pred: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda vs: vs is not None and any(map(pred, vs))


def _all_of(pred: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda vs: vs is not None and all(map(pred, vs))


def _dynamic(pred: Callable[[Any, Any], bool], mode: Mode, op: str) -> Callable[[Any, Any], bool]:
    def scalar(v: Any, r: Any) -> bool:
        if v is None or r is None:
            return False
        try:
            return pred(v, r)
        except TypeError:
            return False

    if mode == "scalar":
        return scalar
    if mode == "list" and op == "in":
        return lambda vs, r: vs is not None and r is not None and all(scalar(v, r) for v in vs)
    return lambda vs, r: vs is not None and r is not None and any(scalar(v, r) for v in vs)


def compile_filter(node: Node, source: str = "syscall") -> CompiledFilter:
    """One Python function for a whole condition; raises FilterCompileError with libsinsp's messages."""
    compiler = _Compiler(source)
    match, code = compiler.build(node)
    return CompiledFilter(match, frozenset(compiler.keys), code)


@dataclass(frozen=True)
class CompiledRuleset:
    """Several conditions in one generated function pair, sharing field reads and repeated macros.

    `match_all(event)` lists the indexes of the matching conditions in order; `match_first(event)` is the
    first one or -1; `match(event, first)` is the generated function itself (with `first`, a list of at
    most the first index), for callers that want one call per event. Evaluating them together reads
    each event key once for all rules and evaluates a macro that several rules expand (e.g.
    `spawned_process and container`) once per event.
    """

    match_all: Callable[[Any], list[int]]
    match_first: Callable[[Any], int]
    fields: frozenset[str]
    source: str
    match: Callable[..., list[Any]]


def compile_ruleset(nodes: list[Node], source: str = "syscall",
                    event_types: str | Iterable[str] | None = None, *,
                    results: Sequence[Any] | None = None, first: bool = False) -> CompiledRuleset:
    """Compiles the conditions of the rules for one event type (in evaluation order) together.

    With `event_types` (one name or several sharing the same candidate rules, e.g. open/openat/openat2),
    the ruleset is only ever given events of those types: `evt.type` checks that hold, or fail, for all
    of them become constants at compile time and the boolean structure around them is simplified.

    Rules whose conditions start with the same conjunct (`open_write and ...`, `spawned_process and
    container and ...`) are nested under one test of it, so an event for which it is false skips them
    all at once. Conditions have no side effects, so the order in which they run does not change which
    rules match; the matches are returned in rule order, and `first` returns the lowest index.

    With `results`, every function returns `results[i]` in place of the index `i`, so that a caller gets
    its own match objects from one call per event: `match(event)`, with `first` as its default.
    """
    types = None if event_types is None else frozenset([event_types] if isinstance(event_types, str)
                                                        else event_types)
    compiler = _Compiler(source, inline_reads=True, event_types=types)
    compiler.find_shared(list(nodes))
    lines = ["_out = []"]
    order: list[int] = []
    _emit_rules(compiler, [(i, _conjuncts(compiler, node)) for i, node in enumerate(nodes)], "", lines, order)
    reordered = order != sorted(order)
    lines += ["if _out:", "    if _first:", f"        return [_r[{'min(_out)' if reordered else '_out[0]'}]]"]
    if reordered:
        lines.append("    _out.sort()")
    if results is not None:
        lines.append("    return [_r[i] for i in _out]")
    lines.append("return _out")
    compiler.consts["_r"] = tuple(results) if results is not None else tuple(range(len(nodes)))
    match = compiler.assemble({"_match": lines}, params=f"ev, _first={first}")["_match"]

    def match_all(event: Any) -> list[Any]:
        return match(event, False)  # type: ignore[no-any-return]

    def match_first(event: Any) -> Any:
        found = match(event, True)
        return found[0] if found else -1

    return CompiledRuleset(match_all, match_first, frozenset(compiler.keys), compiler.source_code, match)


_MAX_NESTING = 8


def _conjuncts(compiler: _Compiler, node: Node) -> list[Node]:
    """`a and (b and c)` as [a, b, c]; an `and` that is evaluated once for several rules (a repeated
    macro) stays one conjunct."""
    if not isinstance(node, And):
        return [node]
    out: list[Node] = []
    for child in node.children:
        if isinstance(child, And) and compiler.texts.get(id(child)) not in compiler.shared:
            out += _conjuncts(compiler, child)
        else:
            out.append(child)
    return out


def _emit_rules(compiler: _Compiler, rules: list[tuple[int, list[Node]]], indent: str, lines: list[str],
                order: list[int]) -> None:
    """Statements testing `rules` (index, remaining conjuncts), those sharing a first conjunct nested
    under one test of it. Appends the indexes in the order they are tested to `order`."""
    groups: dict[str, list[tuple[int, list[Node]]]] = {}
    for index, conjuncts in rules:
        key = "" if not conjuncts else compiler.texts.get(id(conjuncts[0])) or as_string(conjuncts[0])
        groups.setdefault(key, []).append((index, conjuncts))
    nest = len(indent) // 4 < _MAX_NESTING
    for key, members in groups.items():
        if key and (len(members) == 1 or not nest):
            for index, conjuncts in members:
                node = conjuncts[0] if len(conjuncts) == 1 else And(conjuncts, pos=conjuncts[0].pos)
                code = compiler.node(node)
                compiler.loaded = compiler.loaded | compiler.last_must  # read whatever its outcome
                if code != "False":
                    order.append(index)
                    lines += [f"{indent}if {code}:", f"{indent}    _out.append({index})"]
            continue
        if not key:  # nothing left to test
            for index, _ in members:
                order.append(index)
                lines.append(f"{indent}_out.append({index})")
            continue
        code = compiler.node(members[0][1][0])
        must = compiler.last_must
        rests = [(index, conjuncts[1:]) for index, conjuncts in members]
        if code == "False":
            continue
        if code == "True":
            _emit_rules(compiler, rests, indent, lines, order)
            continue
        outer = compiler.loaded
        compiler.loaded = outer | must
        body: list[str] = []
        _emit_rules(compiler, rests, indent + "    ", body, order)
        if body:
            lines += [f"{indent}if {code}:", *body]
        compiler.loaded = outer | must if body else outer
