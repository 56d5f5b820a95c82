"""Request bodies checked against Run's discovery document, as Google's front end does: unknown
fields refused (400 "Invalid JSON payload received. Unknown name ..."), output-only fields
dropped, enum numbers (GAPIC REST sends ``enum-encoding=int``) turned into names."""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument


@functools.cache
def _doc() -> dict[str, Any]:
    spec = importlib.util.find_spec("googleapiclient")
    if spec is None or not spec.submodule_search_locations:
        return {"schemas": {}}
    base = Path(next(iter(spec.submodule_search_locations)))
    return json.loads((base / "discovery_cache" / "documents" / "run.v2.json").read_text())


def clean(value: Any, schema: dict[str, Any], where: str) -> Any:
    """``value`` checked against ``schema`` (a discovery schema or ``{"$ref": name}``)."""
    schemas = _doc()["schemas"]
    if "$ref" in schema:
        schema = schemas.get(schema["$ref"], {})
    typ = schema.get("type")
    if typ == "object" and isinstance(value, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        out: dict[str, Any] = {}
        for k, v in value.items():
            if props is not None and k in props:
                if props[k].get("readOnly"):
                    continue
                out[k] = clean(v, props[k], f"{where}.{k}")
            elif addl is not None:
                out[k] = clean(v, addl, f"{where}.{k}")
            elif props is None and not addl:
                out[k] = v
            else:
                raise InvalidArgument(
                    f"Invalid JSON payload received. Unknown name \"{k}\" at '{where}': "
                    "Cannot find field."
                )
        return out
    if typ == "array" and isinstance(value, list):
        return [clean(v, schema.get("items", {}), where) for v in value]
    if typ == "string" and "enum" in schema and isinstance(value, int):
        names = schema["enum"]
        if not 0 <= value < len(names):
            raise InvalidArgument(f"Invalid value at '{where}': {value}")
        return names[value]
    return value


def body(data: dict[str, Any], schema: str, where: str) -> dict[str, Any]:
    """A request body (already parsed JSON) checked against schema ``schema``."""
    return clean(data, {"$ref": schema}, where)  # type: ignore[no-any-return]
