"""Domain-name fields (fd.sip.name & co.) the way Falco's DNS manager gives them.

Falco does not reverse-resolve addresses: it resolves, forward and periodically, every name a rule compares one of
these fields with, and a field holds the names whose addresses include the event's. Here the engine says which
names its rules use (`names_in`) and reads the table (`DnsNames`); who resolves is the caller's business (the worker
does, in processor/dns_resolver.py): the engine does no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from processor.engine import ast

# field -> the address field whose value it names
DNS_NAME_FIELDS = {"fd.sip.name": "fd.sip", "fd.cip.name": "fd.cip", "fd.lip.name": "fd.lip", "fd.rip.name": "fd.rip"}


def names_in(conditions: Iterable[ast.Node]) -> list[str]:
    """The constant names compared with a domain-name field anywhere in these (expanded) conditions, in the order
    they are written (the first of several names for one address is the one an output shows)."""
    names: dict[str, None] = {}
    for condition in conditions:
        for node in ast.walk(condition):
            if not (isinstance(node, ast.Check) and isinstance(node.field, ast.FieldRef)
                    and node.field.name in DNS_NAME_FIELDS):
                continue
            value = node.value
            items = value.items if isinstance(value, ast.ListValue) else [value]
            names.update((item.text.strip("\"'"), None) for item in items if isinstance(item, ast.StrValue))
    return [n for n in names if n]


@dataclass
class DnsNames:
    """Address -> the rule names that resolved to it, as of the last resolution. Replaced whole, never edited in
    place, so a reader in another thread sees one resolution or the next."""

    by_address: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def names_of(self, address: object) -> list[str] | None:
        names = self.by_address.get(str(address)) if address is not None else None
        return list(names) if names else None

    def replace(self, resolved: Mapping[str, Iterable[str]]) -> None:
        """`resolved`: name -> its addresses. Names keep the order they were asked in (the first is shown)."""
        by_address: dict[str, list[str]] = {}
        for name, addresses in resolved.items():
            for address in addresses:
                names = by_address.setdefault(address, [])
                if name not in names:
                    names.append(name)
        self.by_address = {a: tuple(n) for a, n in by_address.items()}
