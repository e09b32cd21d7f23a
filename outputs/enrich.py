"""Falcosidekick's customfields, customtags and templatedfields, applied in its order.

Templated fields use the subset of Go templates that Falcosidekick's documentation shows:
`{{ index . "k8s.ns.name" }}`, `{{ .field }}`, `{{ or (index . "a") "default" }}` and literal text.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

from outputs.config import OutputSpec
from outputs.model import Alert
from settings.config import ConfigError

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
_TOKEN = re.compile(r'\s*(\(|\)|"(?:[^"\\]|\\.)*"|`[^`]*`|[^\s()]+)')


def _tokens(expr: str, where: str) -> list[str]:
    pos, out = 0, []
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            if expr[pos:].strip():
                raise ConfigError(f"{where}: cannot read template near {expr[pos:]!r}")
            break
        out.append(m.group(1))
        pos = m.end()
    return out


class Template:
    """A compiled templated field; rendering never raises (a missing key renders as empty, like Go's maps)."""

    def __init__(self, text: str, where: str) -> None:
        self.parts: list[str | list[Any]] = []
        pos = 0
        for m in _ACTION.finditer(text):
            self.parts.append(text[pos:m.start()])
            tokens = _tokens(m.group(1), where)
            tree, rest = self._parse(tokens, where)
            if rest:
                raise ConfigError(f"{where}: unexpected {' '.join(rest)!r} in template")
            self.parts.append(tree)
            pos = m.end()
        self.parts.append(text[pos:])

    def _parse(self, tokens: list[str], where: str) -> tuple[list[Any], list[str]]:
        """A pipeline-free command: `func arg...` or a single operand."""
        items: list[Any] = []
        while tokens and tokens[0] != ")":
            tok = tokens.pop(0)
            if tok == "(":
                sub, tokens = self._parse(tokens, where)
                if not tokens or tokens[0] != ")":
                    raise ConfigError(f"{where}: unbalanced '(' in template")
                tokens = tokens[1:]
                items.append(sub)
            else:
                items.append(tok)
        if not items:
            raise ConfigError(f"{where}: empty template action")
        if isinstance(items[0], str) and items[0] not in ("index", "or") and len(items) > 1:
            raise ConfigError(f"{where}: unsupported template function '{items[0]}' (index, or)")
        return items, tokens

    def render(self, fields: dict[str, Any]) -> str:
        return "".join(p if isinstance(p, str) else _text(self._eval(p, fields)) for p in self.parts)

    def _eval(self, node: Any, fields: dict[str, Any]) -> Any:
        if isinstance(node, list):
            head = node[0]
            if head == "index":
                base = self._eval(node[1], fields) if len(node) > 1 else fields
                key = self._eval(node[2], fields) if len(node) > 2 else None
                return base.get(str(key)) if isinstance(base, dict) else None
            if head == "or":
                for arg in node[1:]:
                    value = self._eval(arg, fields)
                    if value not in (None, "", 0, False, [], {}):
                        return value
                return self._eval(node[-1], fields) if len(node) > 1 else None
            return self._eval(head, fields)
        if node == ".":
            return fields
        if node.startswith('"'):
            return json.loads(node)
        if node.startswith("`"):
            return node[1:-1]
        if node.startswith("."):
            return fields.get(node[1:])
        return node


def _text(value: Any) -> str:
    if value is None:
        return "<no value>"
    return str(value)


@dataclass
class Enricher:
    customfields: dict[str, Any]
    customtags: list[str]
    templates: dict[str, Template]

    @classmethod
    def from_spec(cls, spec: OutputSpec) -> Enricher:
        custom = {k: (os.environ.get(v[1:], "") if isinstance(v, str) and v.startswith("%") else v)
                  for k, v in spec.customfields.items()}
        templates = {k: Template(str(v), f"{spec.where}.templatedfields.{k}") for k, v in spec.templatedfields.items()}
        return cls(custom, list(spec.customtags), templates)

    @property
    def active(self) -> bool:
        return bool(self.customfields or self.customtags or self.templates)

    def apply(self, alert: Alert) -> Alert:
        """In place: every output decodes its own copy of the record."""
        if not self.active:
            return alert
        out = alert
        fields = out.setdefault("output_fields", {})
        fields.update(self.customfields)
        if self.customtags:
            out["tags"] = [*(out.get("tags") or []), *[t for t in self.customtags if t not in (out.get("tags") or [])]]
        for key, template in self.templates.items():
            fields[key] = template.render(fields)
        return out
