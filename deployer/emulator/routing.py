"""Routes: URL templates in Google's own notation, matched against the raw request path.

Each API module has a module-level ``router = Router()`` and decorates its handlers::

    @router.route("GET", "/v2/projects/{project}/locations/{location}/services/{service}")
    def get_service(req: Request, project: str, location: str, service: str) -> dict: ...

``{x}`` matches one path segment without ``/`` or ``:``; ``{x=**}`` matches the rest of the
path (slashes included); a literal custom verb (``.../services/{service}:enable``) matches as
written. Captured values are percent-decoded. The query string is not part of the match.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .errors import ApiError

if TYPE_CHECKING:
    from .context import Emulator

Handler = Callable[..., Any]


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only request headers."""

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._d: dict[str, str] = {}
        for k, v in pairs:
            self._d[k.lower()] = v

    def __getitem__(self, key: str) -> str:
        return self._d[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._d

    def __repr__(self) -> str:
        return f"Headers({self._d!r})"


@dataclass
class Request:
    method: str
    path: str  # raw (still percent-encoded), without the query string
    query: dict[str, list[str]]
    headers: Headers
    body: bytes
    emu: Emulator

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter ``name``."""
        vals = self.query.get(name)
        return vals[0] if vals else default

    def json(self) -> dict[str, Any]:
        """The body as a JSON object: empty -> {}; not JSON (or not an object) -> 400."""
        if not self.body or not self.body.strip():
            return {}
        try:
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"Invalid JSON payload received. {exc}") from None
        if not isinstance(data, dict):
            raise ApiError(400, "Invalid JSON payload received. Expected an object.")
        return data


@dataclass
class Response:
    status: int = 200
    body: bytes | dict[str, Any] | list[Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    #: close the connection without answering (the request is not applied by the handler)
    dropped: bool = False
    #: send the head and only this many bytes of the body, then close (a broken stream)
    body_limit: int | None = None

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(=\*\*)?\}")


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    regex: re.Pattern[str]
    handler: Handler
    rest_vars: int  # number of {x=**}
    literal_len: int  # characters of literal text: longer = more specific

    @property
    def sort_key(self) -> tuple[int, int, str]:
        return (self.rest_vars, -self.literal_len, self.template)


def compile_template(template: str) -> tuple[re.Pattern[str], int, int]:
    if not template.startswith("/"):
        raise ValueError(f"route template must start with '/': {template!r}")
    out: list[str] = []
    pos = 0
    rest = 0
    literal = 0
    for m in _VAR.finditer(template):
        lit = template[pos : m.start()]
        if "{" in lit or "}" in lit:
            raise ValueError(f"bad route template {template!r}")
        out.append(re.escape(lit))
        literal += len(lit)
        if m.group(2):
            out.append(f"(?P<{m.group(1)}>.+)")
            rest += 1
        else:
            out.append(f"(?P<{m.group(1)}>[^/:]+)")
        pos = m.end()
    tail = template[pos:]
    if "{" in tail or "}" in tail:
        raise ValueError(f"bad route template {template!r}")
    out.append(re.escape(tail))
    literal += len(tail)
    return re.compile("^" + "".join(out) + "$"), rest, literal


class Router:
    """A set of routes; each API module owns one (``router = Router()``)."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(self, method: str, template: str) -> Callable[[Handler], Handler]:
        method = method.upper()
        regex, rest, literal = compile_template(template)

        def deco(fn: Handler) -> Handler:
            self.routes.append(Route(method, template, regex, fn, rest, literal))
            return fn

        return deco


class RouteTable:
    """All routers merged; the most specific template wins (fewest ``**``, most literal text)."""

    def __init__(self, routers: Iterable[Router]) -> None:
        routes = [r for router in routers for r in router.routes]
        seen: dict[tuple[str, str], Route] = {}
        for r in routes:
            shape = _VAR.sub(lambda m: "{**}" if m.group(2) else "{*}", r.template)
            if (r.method, shape) in seen:
                other = seen[(r.method, shape)].template
                raise ValueError(f"route registered twice: {r.method} {r.template} ({other})")
            seen[(r.method, shape)] = r
        self.routes = sorted(routes, key=lambda r: r.sort_key)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        method = method.upper()
        for r in self.routes:
            if r.method != method:
                continue
            m = r.regex.match(path)
            if m:
                return r, {k: unquote(v) for k, v in m.groupdict().items()}
        return None
