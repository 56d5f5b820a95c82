"""The discovery-document contract: request and response bodies checked against Google's own
discovery documents (shipped in google-api-python-client).

    check_exchange(api, version, method, path, request, response, status=None) -> [problems]
    check_transcript(entries) -> [problems]          # emulator transcript entries

The API is found from the URL by :data:`PREFIXES` (``api=None``), the discovery method by HTTP
method + flatPath/path template, then the bodies are checked recursively: unknown fields,
type mismatches (string / integer / number / boolean / object / array / $ref /
additionalProperties), enums (names or ints), int64 as JSON strings (ints accepted), ``Any``
(``"type": "any"``) accepted. Error responses (status >= 400, or a body that is only
``{"error": ...}``) are checked against Google's error shape instead.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from deployer.emulator.discovery import PREFIXES as PREFIXES  # re-exported for the tests
from deployer.emulator.discovery import find_method, load_doc, resolve_api

_INT64 = re.compile(r"^-?\d+$")
_STD_ERROR_KEYS = {"code", "message", "status", "details", "errors"}
_LEGACY_ERROR_ITEM_KEYS = {
    "message",
    "domain",
    "reason",
    "location",
    "locationType",
    "extendedHelp",
    "sendReport",
    "debugInfo",
}


# -- schema checking -----------------------------------------------------------------------------


def check_value(
    doc: dict[str, Any], value: Any, schema: dict[str, Any], where: str, *, response: bool
) -> list[str]:
    if "$ref" in schema:
        ref = schema["$ref"]
        target = doc["schemas"].get(ref)
        if target is None:
            return [f"{where}: schema {ref} not in the discovery document"]
        return check_value(doc, value, target, where, response=response)
    typ = schema.get("type")
    if typ == "any" or (typ is None and not schema.get("properties")):
        return []
    if value is None:
        return [f"{where}: null"] if response else []
    fmt = schema.get("format")
    if typ == "string":
        if fmt in ("int64", "uint64"):
            if isinstance(value, bool) or not (
                isinstance(value, int) or (isinstance(value, str) and _INT64.match(value))
            ):
                return [f"{where}: expected an int64 (string of digits), got {value!r}"]
            return []
        if "enum" in schema:
            if isinstance(value, bool):
                return [f"{where}: expected an enum, got {value!r}"]
            if isinstance(value, int):
                if not 0 <= value < len(schema["enum"]):
                    return [f"{where}: enum number {value} out of range"]
                return []
            if value not in schema["enum"]:
                return [f"{where}: {value!r} is not one of {schema['enum']}"]
            return []
        if not isinstance(value, str):
            return [f"{where}: expected a string, got {type(value).__name__} {value!r}"]
        return []
    if typ == "integer":
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and _INT64.match(value))
        ):
            return [f"{where}: expected an integer, got {value!r}"]
        return []
    if typ == "number":
        special = isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity")
        if (isinstance(value, bool) or not isinstance(value, int | float)) and not special:
            return [f"{where}: expected a number, got {value!r}"]
        return []
    if typ == "boolean":
        if not isinstance(value, bool):
            return [f"{where}: expected a boolean, got {value!r}"]
        return []
    if typ == "array":
        if not isinstance(value, list):
            return [f"{where}: expected an array, got {type(value).__name__}"]
        problems: list[str] = []
        for i, item in enumerate(value):
            problems += check_value(
                doc, item, schema.get("items", {}), f"{where}[{i}]", response=response
            )
        return problems
    if typ == "object":
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        problems = []
        for k, v in value.items():
            sub = f"{where}.{k}" if where else k
            if props is not None and k in props:
                problems += check_value(doc, v, props[k], sub, response=response)
            elif addl is not None:
                problems += check_value(doc, v, addl, sub, response=response)
            else:
                problems.append(f"{sub}: unknown field")
        return problems
    return [f"{where}: unsupported schema type {typ!r}"]


def check_error(body: Any) -> list[str]:
    """Google's JSON error shape."""
    if not isinstance(body, dict) or set(body) != {"error"}:
        return [f"error body must be {{'error': {{...}}}}, got {body!r}"]
    err = body["error"]
    problems = []
    if not isinstance(err, dict):
        return ["error: not an object"]
    for k in set(err) - _STD_ERROR_KEYS:
        problems.append(f"error.{k}: unknown field")
    if not isinstance(err.get("code"), int):
        problems.append("error.code: missing or not an integer")
    if not isinstance(err.get("message"), str):
        problems.append("error.message: missing or not a string")
    if "status" in err and not isinstance(err["status"], str):
        problems.append("error.status: not a string")
    for i, d in enumerate(err.get("details", [])):
        if not isinstance(d, dict) or not isinstance(d.get("@type"), str):
            problems.append(f"error.details[{i}]: needs an @type")
        elif d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo":
            extra = set(d) - {"@type", "reason", "domain", "metadata"}
            if extra:
                problems.append(f"error.details[{i}]: unknown ErrorInfo fields {sorted(extra)}")
    for i, e in enumerate(err.get("errors", [])):
        if not isinstance(e, dict):
            problems.append(f"error.errors[{i}]: not an object")
            continue
        extra = set(e) - _LEGACY_ERROR_ITEM_KEYS
        if extra:
            problems.append(f"error.errors[{i}]: unknown fields {sorted(extra)}")
    return problems


def check_exchange(
    api: str | None,
    version: str | None,
    method: str,
    path: str,
    request: dict[str, Any] | None,
    response: dict[str, Any] | None,
    *,
    status: int | None = None,
) -> list[str]:
    """Problems with one request/response pair (empty list: it conforms)."""
    where = f"{method} {path}"
    if api is None or version is None:
        found_api = resolve_api(method, path)
        if found_api is None:
            return [f"{where}: no discovery method matches (PREFIXES table)"]
        api, version = found_api
    found = find_method(api, version, method, path)
    if found is None:
        return [f"{where}: no method of {api} {version} matches"]
    m, kind = found
    doc = load_doc(api, version)
    problems: list[str] = []
    is_json_body = isinstance(request, dict) and set(request) != {"_bytes"}
    if kind == "json" and is_json_body:
        req_schema = m.get("request")
        if req_schema is None:
            if request:
                problems.append(f"{where}: {m['id']} takes no request body")
        else:
            problems += [
                f"{where} request {p}"
                for p in check_value(doc, request, req_schema, "", response=False)
            ]
    is_error = (status is not None and status >= 400) or (
        isinstance(response, dict) and set(response) == {"error"}
    )
    if is_error:
        problems += [f"{where} error {p}" for p in check_error(response)]
    elif isinstance(response, dict) and set(response) != {"_bytes"}:
        resp_schema = m.get("response")
        if resp_schema is None:
            if response:
                problems.append(f"{where}: {m['id']} returns no body, got {response!r}")
        else:
            problems += [
                f"{where} response {p}"
                for p in check_value(doc, response, resp_schema, "", response=True)
            ]
    return problems


# -- route coverage: which emulator routes check_transcript validated -----------------------

#: (method, emulator route template) of every exchange :func:`check_transcript` found valid in
#: this process; tests/conftest.py fails the session when a route is missing from it
VALIDATED_ROUTES: set[tuple[str, str]] = set()

#: routes no discovery method describes (the media download URL, resumable upload chunks, the
#: storage-testbench's retry-test resource, which is no Google API): the coverage guard does not
#: ask for them
UNVALIDATABLE_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/download/storage/v1/b/{bucket}/o/{obj}"),
        ("PUT", "/upload/storage/v1/b/{bucket}/o"),
        ("POST", "/retry_test"),
        ("GET", "/retry_test/{test_id}"),
        ("GET", "/retry_tests"),
        ("DELETE", "/retry_test/{test_id}"),
    }
)


@functools.cache
def _route_table() -> Any:
    from deployer.emulator.routing import RouteTable
    from deployer.emulator.server import load_routers

    return RouteTable(load_routers())


def emulator_routes() -> set[tuple[str, str]]:
    """Every (method, route template) the emulator's API modules serve."""
    return {(r.method, r.template) for r in _route_table().routes}


def route_of(method: str, path: str) -> tuple[str, str] | None:
    found = _route_table().match(method, path)
    return (found[0].method, found[0].template) if found else None


def unvalidated_routes() -> list[tuple[str, str]]:
    """The emulator routes no check_transcript call of this process validated (allowlist
    excepted), sorted."""
    return sorted(emulator_routes() - UNVALIDATABLE_ROUTES - VALIDATED_ROUTES)


def check_transcript(entries: list[dict[str, Any]]) -> list[str]:
    """Problems over emulator transcript entries (dropped requests are skipped). Each entry
    found valid marks its emulator route as validated (:data:`VALIDATED_ROUTES`)."""
    problems: list[str] = []
    for e in entries:
        if e.get("dropped"):
            continue
        query = e.get("query") or {}
        response = e.get("response")
        if "media" in query.get("alt", []):
            response = None
        found = check_exchange(
            None,
            None,
            e["method"],
            e["path"],
            e.get("body"),
            response,
            status=e.get("status"),
        )
        problems += [f"#{e['seq']} {p}" for p in found]
        if not found:
            route = route_of(e["method"], e["path"])
            if route is not None:
                VALIDATED_ROUTES.add(route)
    return problems
