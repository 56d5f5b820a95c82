"""One table taken out of a TOML document by its text, every other byte kept.

    without_table(text, ("tool", "djdeploy")) -> the text without that table

The archive ships a pyproject.toml without ``[tool.djdeploy]``: the image build may read the
file (its dependencies), the deployer's settings are no part of the image. Parsing and writing
back would lose comments and formatting, so the document is cut by lines: the table's header
(``[tool.djdeploy]``, ``[tool.djdeploy.service]``, ``[[tool.djdeploy.cron]]``) with everything up
to the next table that is kept, and any key of another table that lands in it
(``djdeploy.tenant = ...`` under ``[tool]``); with each, the comment lines right above it.

A small scanner finds where each statement starts and ends (multi-line strings and arrays span
lines, a ``[`` at the start of a line may be an array's). Whatever it does not follow, and any
cut whose result tomllib does not read as the same data without the table, gives the text back
unchanged: a wrong cut is worse than none.
"""

from __future__ import annotations

import copy
import string
import tomllib
from dataclasses import dataclass
from typing import Any, Literal

_BARE = frozenset(string.ascii_letters + string.digits + "_-")
_BLANK = " \t"


class _Unsupported(Exception):
    """The scanner cannot follow the text here."""


@dataclass(frozen=True)
class _Line:
    """A run of whole lines: one statement (header or key/value), a comment line, or a blank
    line. ``path`` is the full key a statement sets (a header's table, or the table plus the
    key of a key/value); None for comments and blanks."""

    start: int
    end: int
    kind: Literal["header", "keyval", "comment", "blank"]
    path: tuple[str, ...] | None = None


class _Scanner:
    """A position in the text and the TOML pieces read from it; _Unsupported where the text
    is not what the scanner follows."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at(self, s: str) -> bool:
        return self.text.startswith(s, self.pos)

    def char(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def blanks(self) -> None:
        while self.char() and self.char() in _BLANK:
            self.pos += 1

    def end_of_line(self) -> None:
        """Blanks, an optional comment, then the newline (or the end)."""
        self.blanks()
        if self.char() == "#":
            self.pos = self._newline_or_end()
        if self.at("\r\n"):
            self.pos += 2
        elif self.char() == "\n":
            self.pos += 1
        elif self.pos < len(self.text):
            raise _Unsupported

    def _newline_or_end(self) -> int:
        found = self.text.find("\n", self.pos)
        end = len(self.text) if found < 0 else found
        return end - 1 if end > self.pos and self.text[end - 1] == "\r" else end

    def key(self) -> tuple[str, ...]:
        """A dotted key: bare, "basic" and 'literal' parts."""
        parts = []
        while True:
            self.blanks()
            parts.append(self._key_part())
            self.blanks()
            if self.char() != ".":
                return tuple(parts)
            self.pos += 1

    def _key_part(self) -> str:
        start = self.pos
        if self.char() == '"':
            self._string('"')
            try:  # tomllib undoes the escapes exactly
                return str(tomllib.loads(f"k = {self.text[start : self.pos]}")["k"])
            except tomllib.TOMLDecodeError:
                raise _Unsupported from None
        if self.char() == "'":
            self._string("'")
            return self.text[start + 1 : self.pos - 1]
        while self.char() and self.char() in _BARE:
            self.pos += 1
        if self.pos == start:
            raise _Unsupported
        return self.text[start : self.pos]

    def _string(self, quote: str) -> None:
        """A one-line string from its opening quote to past its closing one."""
        self.pos += 1
        while (c := self.char()) != quote:
            if not c or c == "\n":
                raise _Unsupported
            self.pos += 2 if c == "\\" and quote == '"' else 1
        self.pos += 1

    def _multiline(self, quotes: str) -> None:
        """A multi-line string from its opening quotes to past its closing ones (up to two
        more quote characters before them are content)."""
        self.pos += 3
        while not self.at(quotes):
            if not self.char():
                raise _Unsupported
            self.pos += 2 if self.char() == "\\" and quotes == '"""' else 1
        self.pos += 3
        for _ in range(2):
            if self.char() == quotes[0]:
                self.pos += 1

    def value(self) -> None:
        """A value up to and with the newline that ends it: arrays and inline tables nest,
        multi-line strings and arrays span lines."""
        depth = 0
        while self.char():
            c = self.char()
            if self.at('"""') or self.at("'''"):
                self._multiline(self.text[self.pos : self.pos + 3])
                continue
            if c in "\"'":
                self._string(c)
                continue
            if c == "#":
                self.pos = self._newline_or_end()
                continue
            if c == "\n" and depth == 0:
                self.pos += 1
                return
            if c in "[{":
                depth += 1
            elif c in "]}":
                depth -= 1
                if depth < 0:
                    raise _Unsupported
            self.pos += 1
        if depth:
            raise _Unsupported


def _lines(text: str) -> list[_Line]:
    """The document as statements, comment lines and blank lines, in order."""
    s = _Scanner(text)
    out: list[_Line] = []
    table: tuple[str, ...] = ()
    while s.pos < len(text):
        start = s.pos
        s.blanks()
        if s.char() in ("", "\n", "\r", "#"):
            comment = s.char() == "#"
            s.end_of_line()
            out.append(_Line(start, s.pos, "comment" if comment else "blank"))
            continue
        if s.char() == "[":
            double = s.at("[[")
            s.pos += 2 if double else 1
            table = s.key()
            closing = "]]" if double else "]"
            if not s.at(closing):
                raise _Unsupported
            s.pos += len(closing)
            s.end_of_line()
            out.append(_Line(start, s.pos, "header", table))
            continue
        key = s.key()
        if s.char() != "=":
            raise _Unsupported
        s.pos += 1
        s.value()
        out.append(_Line(start, s.pos, "keyval", table + key))
    return out


def _cut(lines: list[_Line], table: tuple[str, ...]) -> list[bool]:
    """Which lines go: the table's statements, everything from one of its headers to the next
    header kept (but the comments right above that one), and the comments right above each
    statement that goes."""

    def ours(line: _Line) -> bool:
        return line.path is not None and line.path[: len(table)] == table

    gone = [ours(line) for line in lines]
    for i, line in enumerate(lines):
        if line.kind != "header" or not gone[i]:
            continue
        j = i + 1
        while j < len(lines) and not (lines[j].kind == "header" and not gone[j]):
            gone[j] = True
            j += 1
        k = j - 1
        while j < len(lines) and k > i and lines[k].kind == "comment":
            gone[k] = False  # the next kept header's own comments
            k -= 1
    for i in range(len(lines)):
        if ours(lines[i]):
            k = i - 1
            while k >= 0 and lines[k].kind == "comment":
                gone[k] = True
                k -= 1
    if gone and gone[-1]:  # a cut to the end takes the blank lines before it
        k = len(gone) - 1
        while k >= 0 and gone[k]:
            k -= 1
        while k >= 0 and lines[k].kind == "blank":
            gone[k] = True
            k -= 1
    return gone


def _has(data: dict[str, Any], table: tuple[str, ...]) -> bool:
    """Whether ``data`` holds ``table`` (a key path), as a table or any other value."""
    inner: Any = data
    for name in table:
        if not isinstance(inner, dict) or name not in inner:
            return False
        inner = inner[name]
    return True


def _pruned(data: dict[str, Any], table: tuple[str, ...]) -> dict[str, Any]:
    """The data without ``table``, and without the tables that held only it."""
    out = copy.deepcopy(data)
    chain = [out]
    for name in table[:-1]:
        inner = chain[-1].get(name)
        if not isinstance(inner, dict):
            return out
        chain.append(inner)
    chain[-1].pop(table[-1], None)
    for parent, name in zip(reversed(chain[:-1]), reversed(table[:-1]), strict=True):
        if parent[name] == {}:
            del parent[name]
    return out


def without_table(text: str, table: tuple[str, ...]) -> str:
    """``text`` without ``table`` (a key path: ``("tool", "djdeploy")``) and its subtables;
    ``text`` itself when it has no such table, is not TOML, or the cut is not exact."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return text
    if not _has(data, table):
        return text
    try:
        lines = _lines(text)
    except _Unsupported:
        return text
    gone = _cut(lines, table)
    cut = "".join(text[line.start : line.end] for line, g in zip(lines, gone, strict=True) if not g)
    try:
        left = tomllib.loads(cut)
    except tomllib.TOMLDecodeError:
        return text
    exact = not _has(left, table) and _pruned(left, table) == _pruned(data, table)
    return cut if exact else text
