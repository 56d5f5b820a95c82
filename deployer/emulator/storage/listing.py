"""objects.list: which objects (and which generations), rolled up how, one page at a time.

Storage pages by object name, not by offset: the page token is the position of the last entry
answered (name and generation, base64url JSON), so objects written between pages never shift a
page. A prefix answered on one page covers every name under it, so the position after it is
past all of them. The filters, as Google applies them: ``prefix``, ``startOffset`` (inclusive),
``endOffset`` (exclusive), ``matchGlob`` on the whole name, then the ``delimiter`` roll-up
(``includeTrailingDelimiter`` also answers an object whose name ends at the delimiter).
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import Invalid

#: a position after every name that starts with a given prefix
_AFTER = "\U0010ffff"


@dataclass(frozen=True)
class ListQuery:
    prefix: str = ""
    delimiter: str = ""
    start_offset: str = ""
    end_offset: str = ""
    match_glob: str = ""
    include_trailing_delimiter: bool = False
    versions: bool = False
    max_results: int = 1000
    page_token: str = ""


@dataclass
class ListPage:
    items: list[dict[str, Any]] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    next_page_token: str = ""


def _position(token: str) -> tuple[str, int]:
    if not token:
        return ("", -1)
    try:
        name, gen = json.loads(base64.urlsafe_b64decode(token.encode()))
        return (str(name), int(gen))
    except (ValueError, TypeError):
        raise Invalid(f"Invalid page token: {token}") from None


def _token(name: str, generation: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([name, generation]).encode()).decode()


@functools.lru_cache(maxsize=64)
def glob_regex(glob: str) -> re.Pattern[str]:
    """Cloud Storage's matchGlob: ``*`` any run without ``/``, ``**`` any run, ``?`` one
    character but ``/``, ``[abc]`` / ``[!abc]`` a class, ``{a,b}`` alternatives."""
    out: list[str] = []
    i, depth = 0, 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = glob.find("]", i + 2)
            if end < 0:
                raise Invalid(f"Invalid matchGlob: {glob}")
            body = glob[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append(f"[{body}]")
            i = end
        elif c == "{":
            out.append("(?:")
            depth += 1
        elif c == "}" and depth:
            out.append(")")
            depth -= 1
        elif c == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    if depth:
        raise Invalid(f"Invalid matchGlob: {glob}")
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def walk(docs: Iterable[dict[str, Any]], query: ListQuery) -> ListPage:
    """One page of ``docs`` (every candidate object document, sorted by name then
    generation) under ``query``."""
    after = _position(query.page_token)
    glob = glob_regex(query.match_glob) if query.match_glob else None
    page = ListPage()
    taken = 0
    last: tuple[str, int] | None = None
    for doc in docs:
        name = doc["name"]
        pos = (name, int(doc["generation"]))
        if pos <= after or not name.startswith(query.prefix):
            continue
        if name < query.start_offset or (query.end_offset and name >= query.end_offset):
            continue
        if glob is not None and not glob.match(name):
            continue
        rolled = ""
        if query.delimiter:
            cut = name.find(query.delimiter, len(query.prefix))
            if cut >= 0:
                rolled = name[: cut + len(query.delimiter)]
        # includeTrailingDelimiter: "a/" itself is answered as well as the prefix "a/"
        trailing = rolled == name and query.include_trailing_delimiter
        if rolled and page.prefixes and page.prefixes[-1] == rolled:
            if trailing:
                page.items.append(doc)
            continue
        if taken >= query.max_results:
            assert last is not None
            page.next_page_token = _token(*last)
            break
        taken += 1
        if rolled:
            page.prefixes.append(rolled)
            last = (rolled + _AFTER, 0)
            if trailing:
                page.items.append(doc)
            continue
        page.items.append(doc)
        last = pos
    return page
