"""Field transformers (libsinsp sinsp_filter_transformers): tolower toupper b64 basename len join concat getopt.

Each takes already-extracted values and returns the transformed value, or None when an input is
missing (so the check is false, as in libsinsp when extraction fails).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any

from processor.engine.fields import BUFFER_TYPES, STRING_TYPES

STRING_INPUT = STRING_TYPES | BUFFER_TYPES


def _tolower(v: Any) -> Any:
    return v.lower()


def _toupper(v: Any) -> Any:
    return v.upper()


def _b64(v: Any) -> Any:
    try:
        return base64.b64decode(v, validate=False).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None


def _basename(v: Any) -> Any:
    return v[v.rfind("/") + 1:] if isinstance(v, str) else v[v.rfind(b"/") + 1:]


# name -> (function on one value, output type or None for "same as input")
SINGLE_VALUE: dict[str, tuple[Callable[[Any], Any], str | None]] = {
    "tolower": (_tolower, None),
    "toupper": (_toupper, None),
    "b64": (_b64, "charbuf"),
    "basename": (_basename, None),
}


def single(name: str, is_list: bool) -> Callable[[Any], Any]:
    """The transformer over a value that may be missing (None) or, for list inputs, a list."""
    if name == "len":
        return lambda v: None if v is None else len(v)
    fn = SINGLE_VALUE[name][0]
    if is_list:
        return lambda vs: None if vs is None else [r for r in map(fn, vs) if r is not None] or None
    return lambda v: None if v is None else fn(v)


def _flatten(values: Sequence[Any]) -> list[str] | None:
    out: list[str] = []
    for v in values:
        if v is None:
            continue
        if isinstance(v, list | tuple):
            out.extend(str(x) for x in v if x is not None)
        else:
            out.append(v if isinstance(v, str) else str(v))
    return out


def join(sep: Any, *values: Any) -> str | None:
    """`join(sep, list...)`: the values of the list arguments (fields or `(a, b)`) joined by sep."""
    if sep is None:
        return None
    items = _flatten(values)
    if not items and all(v is None for v in values):
        return None
    return str(sep).join(items or [])


def concat(*values: Any) -> str | None:
    """`concat(a, b, ...)`: the string values end to end; missing when any is missing."""
    if any(v is None for v in values):
        return None
    return "".join(v if isinstance(v, str) else str(v) for v in values)


def getopt(args: Any, optstring: Any, option: str | None) -> str | None:
    """`getopt(args, "ab:")[b]`: the argument of option b in a command's arguments, as POSIX getopt.

    A flag without argument yields "" when present; an absent option (or missing input) is missing.
    """
    if args is None or optstring is None or not option:
        return None
    argv = args.split() if isinstance(args, str) else [str(a) for a in args]
    spec = str(optstring)
    found: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            continue
        j = 1
        while j < len(arg):
            opt = arg[j]
            pos = spec.find(opt)
            if pos < 0 or opt == ":":
                j += 1
                continue
            if pos + 1 < len(spec) and spec[pos + 1] == ":":
                if j + 1 < len(arg):
                    found[opt] = arg[j + 1:]
                elif i < len(argv):
                    found[opt] = argv[i]
                    i += 1
                break
            found[opt] = ""
            j += 1
    return found.get(option)
