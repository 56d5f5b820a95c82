"""The subset of the Logging query language the emulator evaluates (no HTTP).

A filter is terms joined by ``AND`` (or whitespace, which Logging reads as AND); a term is
``FIELD OP VALUE`` with the value quoted or bare. ``severity`` compares by level (``WARNING``
includes ERROR and above for ``>=``) and ``timestamp`` by time; everything else as text (only
``=`` and ``!=``). Anything else is refused, naming the term, so a caller never gets a silently
wider answer than Google's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgument
from ..formats import parse_rfc3339

SEVERITIES = (
    "DEFAULT",
    "DEBUG",
    "INFO",
    "NOTICE",
    "WARNING",
    "ERROR",
    "CRITICAL",
    "ALERT",
    "EMERGENCY",
)
_LEVEL = {name: i * 100 for i, name in enumerate(SEVERITIES)}

_TERM = re.compile(
    r'\s*(?P<field>[A-Za-z_][A-Za-z0-9_]*(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|"[^"]+"))*)'
    r'\s*(?P<op>>=|<=|!=|=|>|<)\s*(?P<value>"(?:[^"\\]|\\.)*"|[^\s"()]+)\s*'
)
_AND = re.compile(r"AND\s+|(?=\S)")

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def parse_time(value: str) -> float:
    """An RFC 3339 timestamp ("2026-01-02T03:04:05.123456789Z") as epoch seconds; nanosecond
    digits past the sixth are dropped."""
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise InvalidArgument(f"Invalid timestamp in filter: {value!r}.") from None


def level(severity: str) -> int:
    """The numeric level of a severity name (or of a number, as Logging also accepts)."""
    if severity.isdigit():
        return int(severity)
    if severity.upper() not in _LEVEL:
        raise InvalidArgument(f"Invalid severity in filter: {severity!r}.")
    return _LEVEL[severity.upper()]


@dataclass(frozen=True)
class Term:
    path: tuple[str, ...]
    op: str
    value: str

    def matches(self, entry: dict[str, Any]) -> bool:
        head = self.path[0]
        if head == "severity":
            return _OPS[self.op](level(entry.get("severity", "DEFAULT")), level(self.value))
        if head == "timestamp":
            return _OPS[self.op](parse_time(entry["timestamp"]), parse_time(self.value))
        found: Any = entry
        for part in self.path:
            found = found.get(part) if isinstance(found, dict) else None
        return _OPS[self.op]("" if found is None else str(found), self.value)


#: the fields a term may name: (first path part, number of parts), and the operators each takes
_ORDERED = frozenset(_OPS)
_TEXT = frozenset({"=", "!="})
_FIELDS: dict[tuple[str, int], frozenset[str]] = {
    ("severity", 1): _ORDERED,
    ("timestamp", 1): _ORDERED,
    ("insertId", 1): _ORDERED,
    ("logName", 1): _TEXT,
    ("resource", 2): _TEXT,  # resource.type
    ("resource", 3): _TEXT,  # resource.labels.K
    ("labels", 2): _TEXT,
}


def _path(field: str) -> tuple[str, ...]:
    parts = re.findall(r'"([^"]+)"|([^.]+)', field)
    return tuple(quoted or bare for quoted, bare in parts)


def _allowed(path: tuple[str, ...], op: str) -> bool:
    ops = _FIELDS.get((path[0], len(path)))
    if ops is None or op not in ops:
        return False
    if path[0] == "resource":
        return path[1] == "type" if len(path) == 2 else path[1] == "labels"
    return True


def parse(text: str) -> list[Term]:
    """The terms of ``text`` (empty: match everything); an unsupported term is a 400 naming
    it."""
    terms: list[Term] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        m = _TERM.match(text, pos)
        term_text = (m.group(0) if m else text[pos:].split(" AND ")[0]).strip()
        if m is None or not _allowed(_path(m.group("field")), m.group("op")):
            raise InvalidArgument(
                f"Unsupported filter term {term_text!r}: the emulator evaluates resource.type, "
                "resource.labels.*, labels.*, logName, insertId, severity and timestamp "
                "comparisons joined by AND."
            )
        value = m.group("value")
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        term = Term(_path(m.group("field")), m.group("op"), value)
        if term.path[0] == "severity":
            level(value)
        elif term.path[0] == "timestamp":
            parse_time(value)
        terms.append(term)
        pos = m.end()
        joiner = _AND.match(text, pos)
        pos = joiner.end() if joiner else pos
    return terms


def matches(terms: list[Term], entry: dict[str, Any]) -> bool:
    return all(t.matches(entry) for t in terms)
