"""Comparison operators with libsinsp's type rules and semantics (filter_compare.cpp, value_parser.cpp).

Everything that can be decided from the condition text is decided here once, at compile time:
constants are converted to the field's type, globs and regexes are compiled, pmatch path sets are
indexed. What is left per event is a plain Python comparison.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import Any

from processor.engine.fields import BOOL_TYPES, BUFFER_TYPES, DYN_TYPES, IP_TYPES, NUMERIC_TYPES, STRING_TYPES

Predicate = Callable[[Any], bool]

NUMERIC_OPS = frozenset({"=", "==", "!=", "<", "<=", ">", ">=", "in", "intersects", "exists"})
BOOL_OPS = frozenset({"=", "==", "!=", "in", "intersects", "exists"})
STRING_OPS = frozenset({"=", "==", "!=", "<", "<=", ">", ">=", "contains", "in", "exists", "icontains",
                        "startswith", "glob", "pmatch", "endswith", "intersects", "iglob", "regex"})
BUFFER_OPS = frozenset({"=", "==", "!=", "contains", "in", "exists", "startswith", "endswith", "intersects",
                        "bcontains", "bstartswith"})
IP_OPS = frozenset({"=", "==", "!=", "in", "exists", "intersects"})
LIST_FIELD_OPS = frozenset({"in", "exists", "intersects"})
LIST_OPS = frozenset({"in", "intersects", "pmatch"})
LIST_FIELD_TYPES = frozenset({"charbuf", "uint64", "reltime", "abstime", "bool", "ipaddr", "ipnet"})


def comparable_error(op: str, type_: str, is_list: bool) -> str | None:
    """libsinsp's `flt_is_comparable`: None when `op` applies to the type, else the compiler's message."""
    err = _comparable_error(op, type_, is_list)
    return None if err is None else "filter error: " + err


def _comparable_error(op: str, type_: str, is_list: bool) -> str | None:
    if op == "exists":
        return None
    if is_list:
        if type_ not in LIST_FIELD_TYPES:
            return f"list filters are not supported for type '{type_}'"
        return None if op in LIST_FIELD_OPS else f"'{op}' operator not supported list filters"
    if type_ in NUMERIC_TYPES:
        return None if op in NUMERIC_OPS else f"'{op}' operator not supported for numeric filters"
    if type_ in BOOL_TYPES:
        return None if op in BOOL_OPS else f"'{op}' operator not supported for numeric filters"
    if type_ in IP_TYPES:
        return None if op in IP_OPS else f"'{op}' operator not supported for ip address and network filters"
    if type_ in STRING_TYPES or type_ in DYN_TYPES:
        return None if op in STRING_OPS else f"'{op}' operator not supported for string filters"
    if type_ in BUFFER_TYPES:
        return None if op in BUFFER_OPS else f"'{op}' operator not supported for buffer filters"
    return f"'{op}' operator not supported for type '{type_}'"


# -- constants ---------------------------------------------------------------------------------------

_DECIMAL = re.compile(r"[ \t\n]*[+-]?[0-9]+")


def parse_number(text: str, type_: str) -> int | float:
    """`sinsp_numparser`: decimal integers (floats for double); anything else is an error."""
    if type_ == "double":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{text} is not a valid number") from None
    if _DECIMAL.fullmatch(text) is None:
        raise ValueError(f"{text} is not a valid number")
    return int(text)


def convert_constant(text: str, type_: str, op: str) -> Any:
    """A right-hand constant in the field's type, as libsinsp's value parser does at compile time."""
    if op in ("bcontains", "bstartswith"):
        if len(text) % 2 or re.fullmatch(r"[0-9a-fA-F]*", text) is None:
            raise ValueError("filter error: bcontains and bstartswith operator support hex strings only")
        return bytes.fromhex(text)
    if type_ in STRING_TYPES:
        return text
    if type_ in NUMERIC_TYPES:
        return parse_number(text, type_)
    if type_ in BOOL_TYPES:
        if text == "true":
            return True
        if text == "false":
            return False
        raise ValueError(f"filter error: unrecognized boolean value {text}")
    if type_ in ("ipaddr", "ipv4addr", "ipv6addr"):
        ip = _parse_ip(text)
        if ip is None:
            raise ValueError(f"unrecognized IP address {text}")
        return ip
    if type_ in ("ipnet", "ipv4net", "ipv6net"):
        try:
            net = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise ValueError(f"unrecognized IP network {text}") from None
        return (net.version, int(net.netmask), int(net.network_address))
    if type_ in BUFFER_TYPES:
        return text.encode("utf-8", "surrogateescape")
    if type_ in DYN_TYPES:
        try:
            return int(text)
        except ValueError:
            return text
    raise ValueError(f"values of type '{type_}' cannot be compared")


# -- event values ----------------------------------------------------------------------------------

def to_str(v: Any) -> str | None:
    if v is None or v.__class__ is str:
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, bytes | bytearray):
        return bytes(v).decode("utf-8", "replace")
    if isinstance(v, list | tuple):
        return " ".join(s for s in map(to_str, v) if s is not None)
    return str(v)


def to_int(v: Any) -> int | None:
    if v is None or v.__class__ is int:
        return v
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float):
        return int(v)
    if isinstance(v, str | bytes):
        try:
            return int(v)
        except ValueError:
            try:
                return int(float(v))
            except ValueError:
                return None
    return None


def to_float(v: Any) -> float | None:
    if v is None or v.__class__ is float:
        return v
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def to_bool(v: Any) -> bool | None:
    if v is None or v.__class__ is bool:
        return v
    if isinstance(v, str):
        low = v.strip().lower()
        if low == "true":
            return True
        if low == "false":
            return False
        return None
    if isinstance(v, int | float):
        return bool(v)
    return None


# IP addresses are (version, integer) pairs: hashing and comparing them stays in C, unlike ipaddress objects.
IPKey = tuple[int, int]


@functools.lru_cache(maxsize=65536)
def _parse_ip(text: str) -> IPKey | None:
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    return (ip.version, int(ip))


def to_ip(v: Any) -> IPKey | None:
    if v is None or v.__class__ is tuple:
        return v
    if isinstance(v, str):
        return _parse_ip(v)
    if isinstance(v, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return (v.version, int(v))
    if isinstance(v, int) and not isinstance(v, bool):
        return (4, v) if 0 <= v < 2**32 else None
    return None


def to_bytes(v: Any) -> bytes | None:
    if v is None or v.__class__ is bytes:
        return v
    if isinstance(v, str):
        return v.encode("utf-8", "surrogateescape")
    if isinstance(v, bytearray | memoryview):
        return bytes(v)
    return None


def to_dyn(v: Any) -> Any:
    if isinstance(v, bytes | bytearray):
        return bytes(v).decode("utf-8", "replace")
    return v


def coercer(type_: str) -> Callable[[Any], Any]:
    """Converts one event value to the field's Python type once; unusable values become None."""
    if type_ in STRING_TYPES:
        return to_str
    if type_ == "double":
        return to_float
    if type_ in NUMERIC_TYPES:
        return to_int
    if type_ in BOOL_TYPES:
        return to_bool
    if type_ in IP_TYPES:
        return to_ip
    if type_ in BUFFER_TYPES:
        return to_bytes
    return to_dyn


def list_coercer(type_: str) -> Callable[[Any], list[Any] | None]:
    """For list-valued reads (list fields, any-ancestor fields): a list of converted values or None."""
    one = coercer(type_)

    def convert(v: Any) -> list[Any] | None:
        if v is None:
            return None
        if isinstance(v, list | tuple | set | frozenset):
            out = [x for x in map(one, v) if x is not None]
        else:
            x = one(v)
            out = [] if x is None else [x]
        return out or None

    return convert


# -- glob and pmatch -------------------------------------------------------------------------------

def glob_regex(pattern: str, casefold: bool = False) -> re.Pattern[str]:
    """POSIX fnmatch(pattern, s, 0 or FNM_CASEFOLD) as a compiled regex: `*` also crosses `/`."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "\\" and i < n:
            out.append(re.escape(pattern[i]))
            i += 1
        elif c == "[":
            j = i
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append("\\[")
                continue
            body = pattern[i:j]
            i = j + 1
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\")
            out.append("[" + ("^" if negate else "") + body + "]")
        else:
            out.append(re.escape(c))
    flags = re.DOTALL | (re.IGNORECASE if casefold else 0)
    return re.compile("".join(out), flags)


_GLOB_CHARS = frozenset("*?[")


def _components(path: str) -> tuple[str, ...]:
    return tuple(c for c in path.split("/") if c)


class PathPrefixSet:
    """libsinsp's `path_prefix_search` behind `pmatch`: does some listed path prefix the value?

    Matching is per path component (`/opt/dir` prefixes `/opt/dir/x` but not `/opt/dirt`); a listed
    component may be a glob. Exact prefixes are looked up in a set, one lookup per value component.
    """

    __slots__ = ("_exact", "_globs", "_max")

    def __init__(self, paths: Iterable[str]) -> None:
        self._exact: set[tuple[str, ...]] = set()
        self._globs: list[tuple[Any, ...]] = []
        for p in paths:
            comps = _components(p)
            if any(_GLOB_CHARS & set(c) for c in comps):
                self._globs.append(tuple(glob_regex(c) if _GLOB_CHARS & set(c) else c for c in comps))
            else:
                self._exact.add(comps)
        self._max = max((len(c) for c in self._exact), default=0)

    def match(self, value: str) -> bool:
        comps = _components(value)
        exact = self._exact
        if exact:
            for i in range(min(len(comps), self._max) + 1):
                if comps[:i] in exact:
                    return True
        for pattern in self._globs:
            if len(pattern) <= len(comps) and all(
                (p == c) if p.__class__ is str else (p.fullmatch(c) is not None)
                for p, c in zip(pattern, comps, strict=False)
            ):
                return True
        return False


# -- predicates --------------------------------------------------------------------------------------

def scalar_predicate(op: str, type_: str, rhs: Any) -> Predicate:
    """`value op rhs` for one non-missing value; `rhs` is already converted (a tuple for list ops)."""
    if op == "exists":
        return lambda v: True
    if type_ in IP_TYPES:
        return _ip_predicate(op, type_, rhs)
    if op in ("in", "intersects"):
        members = frozenset(rhs)
        return members.__contains__
    if op == "pmatch":
        return PathPrefixSet(rhs).match
    if op in ("=", "=="):
        return lambda v: v == rhs
    if op == "!=":
        return lambda v: v != rhs
    if op == "<":
        return lambda v: v < rhs
    if op == "<=":
        return lambda v: v <= rhs
    if op == ">":
        return lambda v: v > rhs
    if op == ">=":
        return lambda v: v >= rhs
    if op in ("contains", "bcontains"):
        return lambda v: rhs in v
    if op == "icontains":
        low = rhs.lower()
        return lambda v: low in v.lower()
    if op in ("startswith", "bstartswith"):
        return lambda v: v.startswith(rhs)
    if op == "endswith":
        return lambda v: v.endswith(rhs)
    if op in ("glob", "iglob"):
        matcher = glob_regex(rhs, casefold=op == "iglob").fullmatch
        return lambda v: matcher(v) is not None
    if op == "regex":
        try:
            rx = re.compile(rhs, re.DOTALL)
        except re.error as exc:
            raise ValueError(f"invalid regular expression '{rhs}': {exc}") from None
        return lambda v: rx.fullmatch(v) is not None
    raise ValueError(f"unrecognized filter comparison operator '{op}'")


def _in_networks(nets: tuple[tuple[int, int, int], ...]) -> Predicate:
    def pred(v: IPKey) -> bool:
        version, ip = v
        for net_version, mask, net in nets:
            if version == net_version and ip & mask == net:
                return True
        return False

    return pred


def _ip_predicate(op: str, type_: str, rhs: Any) -> Predicate:
    """Values and constants are (version, int); networks (version, mask, network)."""
    is_net = type_ in ("ipnet", "ipv4net", "ipv6net")
    if is_net:
        inside = _in_networks(tuple(rhs) if op in ("in", "intersects") else (rhs,))
        return (lambda v: not inside(v)) if op == "!=" else inside
    if op in ("in", "intersects"):
        return frozenset(rhs).__contains__
    if op == "!=":
        return lambda v: v != rhs
    return lambda v: v == rhs


def modifier_predicate(op: str, type_: str, modifier: str, items: list[Any]) -> Predicate:
    """`value op oneof|anyof|allof (items)`: how many items the value matches (oneof = exactly one)."""
    preds = [scalar_predicate(op, type_, item) for item in items]
    if modifier == "anyof":
        return lambda v: any(p(v) for p in preds)
    if modifier == "allof":
        return lambda v: all(p(v) for p in preds)
    return lambda v: sum(1 for p in preds if p(v)) == 1


@functools.lru_cache(maxsize=4096)
def _dynamic_glob(pattern: str, casefold: bool) -> Callable[[str], Any]:
    return glob_regex(pattern, casefold).fullmatch


@functools.lru_cache(maxsize=4096)
def _dynamic_regex(pattern: str) -> Callable[[str], Any] | None:
    try:
        return re.compile(pattern, re.DOTALL).fullmatch
    except re.error:
        return None


def dynamic_predicate(op: str, type_: str) -> Callable[[Any, Any], bool]:
    """`value op other` where `other` is another field's value (val() or a transformer) per event."""
    if type_ in IP_TYPES:
        if op == "!=":
            return lambda v, r: v != r
        return lambda v, r: v == r
    table: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda v, r: v == r,
        "==": lambda v, r: v == r,
        "!=": lambda v, r: v != r,
        "<": lambda v, r: v < r,
        "<=": lambda v, r: v <= r,
        ">": lambda v, r: v > r,
        ">=": lambda v, r: v >= r,
        "contains": lambda v, r: r in v,
        "bcontains": lambda v, r: r in v,
        "icontains": lambda v, r: r.lower() in v.lower(),
        "startswith": lambda v, r: v.startswith(r),
        "bstartswith": lambda v, r: v.startswith(r),
        "endswith": lambda v, r: v.endswith(r),
        "glob": lambda v, r: _dynamic_glob(r, False)(v) is not None,
        "iglob": lambda v, r: _dynamic_glob(r, True)(v) is not None,
        "regex": lambda v, r: (m := _dynamic_regex(r)) is not None and m(v) is not None,
        "in": lambda v, r: v in r if isinstance(r, list | tuple) else v == r,
        "intersects": lambda v, r: v in r if isinstance(r, list | tuple) else v == r,
        "pmatch": lambda v, r: PathPrefixSet(r if isinstance(r, list | tuple) else [r]).match(v),
    }
    try:
        return table[op]
    except KeyError:
        raise ValueError(f"unrecognized filter comparison operator '{op}'") from None


def type_family(type_: str) -> str:
    if type_ in STRING_TYPES:
        return "string"
    if type_ in NUMERIC_TYPES:
        return "numeric"
    if type_ in BOOL_TYPES:
        return "bool"
    if type_ in IP_TYPES:
        return "ip"
    if type_ in BUFFER_TYPES:
        return "buffer"
    return "dyn"


_RGX_SPECIAL = set(".+*?^$()[]{}|\\")


def regex_simplification_warning(pattern: str) -> str | None:
    """libsinsp's compiler warning for a `regex` constant that simpler operators could check."""
    n = len(pattern)
    i = 0
    while i < n:
        c = pattern[i]
        if (i == 0 and c == "^") or (i == n - 1 and c == "$"):
            i += 1
            continue
        if ((i == 0 and n > 1) or i == n - 2) and c == "." and i + 1 < n and pattern[i + 1] in "+*?":
            i += 2
            continue
        if c in _RGX_SPECIAL:
            return None
        i += 1
    return (f"regex check with '{pattern}' may be optimized with simpler operators such as "
            "'=', 'contains', 'startswith', 'endswith'")
