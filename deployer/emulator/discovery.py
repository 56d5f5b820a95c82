"""Google's discovery documents (shipped in google-api-python-client) as a method table.

    load_doc(api, version) -> the document
    find_method(api, version, http_method, path) -> (method, "json" | "upload") or None

A method's flatPath/path template (and each media-upload path) becomes a regex over raw URL
paths; the most specific match (most literal text) wins. Used by tests/contract.py (request and
response bodies checked against the documents) and by coverage.py (docs/emulator-coverage.md).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

#: (httpMethod, path regex, literal length, method id, "json" | "upload")
MethodPattern = tuple[str, re.Pattern[str], int, str, str]

_VAR = re.compile(r"\{(\+?)([^}]+)\}")

#: URL prefix (regex on the path) -> candidate (api, version)s, tried in order until one has a
#: method matching the path.
PREFIXES: list[tuple[str, list[tuple[str, str]]]] = [
    (r"^/v2/projects/[^/]+/locations/", [("run", "v2")]),
    (r"^/apis/domains\.cloudrun\.com/v1/", [("run", "v1")]),
    (r"^/v1/projects/[^/]+/(locations/[^/]+/)?secrets", [("secretmanager", "v1")]),
    (r"^/v1/projects/[^/]+/(instances|operations|tiers|flags)", [("sqladmin", "v1")]),
    (r"^/(upload/)?storage/v1/", [("storage", "v1")]),
    (r"^/v1/projects/[^/]+/(locations/[^/]+/)?(builds|triggers)", [("cloudbuild", "v1")]),
    (r"^/v1/operations/build/", [("cloudbuild", "v1")]),
    (r"^/v1/projects/[^/]+/locations/[^/]+/repositories", [("artifactregistry", "v1")]),
    (r"^/v1/projects/[^/]+/locations/[^/]+/instances", [("redis", "v1")]),
    (
        r"^/v1/projects/[^/]+/locations/[^/]+/operations",
        [("artifactregistry", "v1"), ("cloudbuild", "v1"), ("redis", "v1")],
    ),
    (r"^/v1/projects/[^/]+/serviceAccounts", [("iam", "v1")]),
    (r"^/v1/projects/[^/]+/locations/[^/]+/jobs", [("cloudscheduler", "v1")]),
    (
        r"^/v3/projects/[^/]+/(uptimeCheckConfigs|alertPolicies|notificationChannels|timeSeries|alerts)",
        [("monitoring", "v3")],
    ),
    (r"^/v3/projects", [("cloudresourcemanager", "v3")]),
    (r"^/v2/entries:", [("logging", "v2")]),
    (r"^/v1/projects/[^/]+/services", [("serviceusage", "v1")]),
    (r"^/v1/operations", [("serviceusage", "v1")]),
]


def docs_dir() -> Path:
    import googleapiclient

    return Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"


@functools.cache
def load_doc(api: str, version: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((docs_dir() / f"{api}.{version}.json").read_text())
    return doc


def template_regex(template: str) -> tuple[re.Pattern[str], int]:
    """A discovery path template as a regex (``{x}`` one segment, ``{+x}`` the rest) and its
    literal length."""
    out, pos, literal = [], 0, 0
    for m in _VAR.finditer(template):
        lit = template[pos : m.start()]
        out.append(re.escape(lit))
        literal += len(lit)
        out.append(".+" if m.group(1) else "[^/]+")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    literal += len(template) - pos
    return re.compile("^" + "".join(out) + "$"), literal


def _walk(resources: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for res in resources.values():
        found += res.get("methods", {}).values()
        found += _walk(res.get("resources", {}))
    return found


@functools.cache
def methods(api: str, version: str) -> tuple[dict[str, Any], ...]:
    """Every method of the API, in document order."""
    return tuple(_walk(load_doc(api, version).get("resources", {})))


@functools.cache
def method_by_id(api: str, version: str) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in methods(api, version)}


@functools.cache
def patterns(api: str, version: str) -> tuple[MethodPattern, ...]:
    base = "/" + load_doc(api, version).get("servicePath", "")
    out: list[MethodPattern] = []
    for m in methods(api, version):
        for key in ("flatPath", "path"):
            if key in m:
                tpl = m[key]
                rx, lit = template_regex(tpl if tpl.startswith("/") else base + tpl)
                out.append((m["httpMethod"], rx, lit, m["id"], "json"))
        for proto in (m.get("mediaUpload") or {}).get("protocols", {}).values():
            rx, lit = template_regex(proto["path"])
            out.append((m["httpMethod"], rx, lit, m["id"], "upload"))
    return tuple(out)


def find_method(
    api: str, version: str, method: str, path: str
) -> tuple[dict[str, Any], str] | None:
    """The discovery method (and "json" or "upload") for an HTTP method + raw URL path."""
    best = None
    for http_method, rx, lit, mid, kind in patterns(api, version):
        matches = http_method == method.upper() and rx.match(path)
        if matches and (best is None or lit > best[0]):
            best = (lit, mid, kind)
    if best is None:
        return None
    return method_by_id(api, version)[best[1]], best[2]


def apis_for(method: str, path: str) -> list[tuple[str, str]]:
    """The (api, version)s of the first :data:`PREFIXES` entry matching ``path`` that have a
    method for it (two when APIs share a path, e.g. a location's operations)."""
    for prefix, candidates in PREFIXES:
        if re.search(prefix, path):
            return [(a, v) for a, v in candidates if find_method(a, v, method, path)]
    return []


def resolve_api(method: str, path: str) -> tuple[str, str] | None:
    """The API a request belongs to (the first of :func:`apis_for`)."""
    found = apis_for(method, path)
    return found[0] if found else None
