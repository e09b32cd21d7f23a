"""Rule output formatting with libsinsp's rules (eventformatter.cpp).

`%field` takes the longest field name that parses (so `%proc.name)` and `%proc.name.` work),
`%field[arg]` passes an argument, `%20field` pads/truncates to a width, `%tolower(field)` applies a
transformer. Falco always formats with "*", so missing values print `<NA>` in text and `null` in JSON.
"""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from processor.engine.fields import BOOL_TYPES, NUMERIC_TYPES, FieldDef, lookup_field

NA = "<NA>"
SUGGESTED_OUTPUT = "container_id=%container.id container_name=%container.name"
"""What Falco's container plugin suggests for syscall rules; Peregrine has these fields built in."""

_NAME_CHARS = re.compile(r"[A-Za-z0-9_.\-]*")
_TRANSFORMER = re.compile(r"(tolower|toupper|b64|basename|len)\(")
_TIME_FIELDS = {"evt.time", "evt.time.s", "evt.time.iso8601", "evt.datetime", "evt.datetime.s"}


class OutputFormatError(ValueError):
    """An output the formatter rejects (LOAD_ERR_COMPILE_OUTPUT, or LOAD_UNKNOWN_FILTER when skipped)."""


def _to_text(value: Any) -> str:
    if value is None:
        return NA
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "(" + ",".join(_to_text(v) for v in value) + ")"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def format_time(ns: int, name: str = "evt.time") -> str:
    """libsinsp's renderings of an absolute time in ns (evt.time is local time, like Falco)."""
    secs, frac = divmod(int(ns), 1_000_000_000)
    if name == "evt.time.iso8601":
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"
    if name == "evt.time.s":
        return time.strftime("%H:%M:%S", time.localtime(secs))
    if name == "evt.datetime":
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(secs)) + f".{frac:09d}"
    if name == "evt.datetime.s":
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(secs))
    return time.strftime("%H:%M:%S", time.localtime(secs)) + f".{frac:09d}"


_TRANSFORMS: dict[str, Callable[[Any], Any]] = {
    "tolower": lambda v: v.lower() if isinstance(v, str) else v,
    "toupper": lambda v: v.upper() if isinstance(v, str) else v,
    "b64": lambda v: base64.b64decode(v).decode("utf-8", "replace") if isinstance(v, str) else v,
    "basename": lambda v: os.path.basename(v) if isinstance(v, str) else v,
    "len": lambda v: len(v) if isinstance(v, (str, list, tuple)) else v,
}


@dataclass(frozen=True, slots=True)
class FieldToken:
    """One `%...` of a format: `key` is the event key (field as written, e.g. "proc.aname[2]")."""

    key: str
    fdef: FieldDef
    width: int = 0
    transformers: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The JSON output_fields key: the token as written, transformers included."""
        text = self.key
        for name in reversed(self.transformers):
            text = f"{name}({text})"
        return text

    def raw(self, event: Any) -> Any:
        value = event.get(self.key)
        if self.fdef.any_value and isinstance(value, list):
            value = value[0] if value else None
        if value is None:
            return None
        for name in reversed(self.transformers):
            value = _TRANSFORMS[name](value)
        if self.transformers:
            return value
        ftype = self.fdef.type
        if isinstance(value, str) and ftype in NUMERIC_TYPES:
            try:
                return int(value, 0)
            except ValueError:
                return value
        if isinstance(value, str) and ftype in BOOL_TYPES:
            return value.lower() in ("true", "1")
        return value

    def text(self, event: Any) -> str:
        value = self.raw(event)
        if isinstance(value, int) and not isinstance(value, bool) and self.key in _TIME_FIELDS:
            out = format_time(value, self.key)
        else:
            out = _to_text(value)
        if self.width:
            out = out[: self.width].ljust(self.width)
        return out


@dataclass(frozen=True)
class OutputFormat:
    """A parsed output: literal text and field tokens in order."""

    text: str
    parts: tuple[str | FieldToken, ...]

    def field_names(self) -> list[str]:
        return [p.key for p in self.parts if isinstance(p, FieldToken)]

    def tokens(self) -> list[FieldToken]:
        return [p for p in self.parts if isinstance(p, FieldToken)]

    def format(self, event: Any) -> str:
        return "".join(p if isinstance(p, str) else p.text(event) for p in self.parts)

    def fields(self, event: Any) -> dict[str, Any]:
        """Typed values for JSON `output_fields` (numbers stay numbers, missing = null)."""
        return {p.label: p.raw(event) for p in self.parts if isinstance(p, FieldToken)}


def _field_at(fmt: str, i: int, source: str) -> tuple[str, FieldDef, int]:
    """The longest field starting at fmt[i] that parses, with its [arg]; returns (key, def, end)."""
    run = _NAME_CHARS.match(fmt, i)
    end = run.end() if run else i
    for k in range(end, i, -1):
        name = fmt[i:k]
        fdef = lookup_field(name, source)
        if fdef is None:
            continue
        if k < len(fmt) and fmt[k] == "[" and fdef.arg != "none":
            close = fmt.find("]", k)
            if close == -1:
                raise OutputFormatError(f"invalid formatting token {fmt[i:]}: missing ']'")
            return fmt[i : close + 1], fdef, close + 1
        if fdef.arg == "required" and not fdef.dotted_arg:
            raise OutputFormatError(f"filter_check called with nonexistent field {name}: argument required")
        return name, fdef, k
    token = fmt[i:].split(maxsplit=1)[0] if fmt[i:].strip() else fmt[i:]
    raise OutputFormatError(f"invalid formatting token {token}")


def parse_output(fmt: str, source: str = "syscall") -> OutputFormat:
    """Parse a rule output; raises OutputFormatError with libsinsp-like messages."""
    parts: list[str | FieldToken] = []
    literal: list[str] = []
    i, n = 0, len(fmt)
    while i < n:
        c = fmt[i]
        if c != "%":
            literal.append(c)
            i += 1
            continue
        if i == n - 1:
            raise OutputFormatError("invalid formatting syntax: formatting cannot end with a %")
        i += 1
        width_start = i
        while i < n and fmt[i].isdigit():
            i += 1
        width = int(fmt[width_start:i]) if i > width_start else 0
        transformers: list[str] = []
        while (m := _TRANSFORMER.match(fmt, i)) is not None:
            transformers.append(m.group(1))
            i = m.end()
        key, fdef, i = _field_at(fmt, i, source)
        for _ in transformers:
            if i >= n or fmt[i] != ")":
                raise OutputFormatError(f"invalid formatting token {fmt[width_start:]}: missing ')'")
            i += 1
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(FieldToken(key, fdef, width, tuple(transformers)))
    if literal:
        parts.append("".join(literal))
    return OutputFormat(fmt, tuple(parts))


@dataclass(frozen=True)
class AppendOutput:
    """One falco.yaml `append_output` entry: extra text and/or JSON fields for matching rules."""

    rule: str | None = None
    source: str | None = None
    tags: frozenset[str] | None = None
    extra_output: str = ""
    extra_fields: tuple[str | tuple[str, str], ...] = ()
    suggested_output: bool = False

    @staticmethod
    def from_config(entry: Mapping[str, Any]) -> AppendOutput:
        match = entry.get("match") or {}
        extra: list[str | tuple[str, str]] = []
        for f in entry.get("extra_fields") or ():
            if isinstance(f, Mapping):
                extra.extend((str(k), str(v)) for k, v in f.items())
            else:
                extra.append(str(f))
        tags = match.get("tags")
        return AppendOutput(
            rule=match.get("rule"), source=match.get("source"),
            tags=frozenset(tags) if tags else None,
            extra_output=str(entry.get("extra_output") or "").strip(),
            extra_fields=tuple(extra), suggested_output=bool(entry.get("suggested_output", False)),
        )

    def matches(self, rule: str, source: str, tags: Iterable[str]) -> bool:
        if self.rule is not None and self.rule != rule:
            return False
        if self.source is not None and self.source != source:
            return False
        return self.tags is None or self.tags <= set(tags)

    def text(self, source: str) -> str:
        """The text appended to the output; suggested fields come from the syscall-source container fields."""
        parts = [SUGGESTED_OUTPUT] if self.suggested_output and source == "syscall" else []
        if self.extra_output:
            parts.append(self.extra_output)
        return " ".join(parts)

    def fields(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in self.extra_fields:
            if isinstance(f, tuple):
                out[f[0]] = f[1]
            else:
                out[f] = "%" + f
        return out


DEFAULT_APPEND_OUTPUT: tuple[AppendOutput, ...] = (AppendOutput(suggested_output=True),)
"""falco.yaml's default `append_output: [{suggested_output: true}]`."""


@dataclass
class OutputConfig:
    """falco.yaml JSON-output switches (json_include_*_property)."""

    include_output: bool = True
    include_output_fields: bool = True
    include_tags: bool = True
    include_message: bool = False
    time_format_iso_8601: bool = False
    append_output: list[AppendOutput] = field(default_factory=lambda: list(DEFAULT_APPEND_OUTPUT))
