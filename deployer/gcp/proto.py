"""Between GAPIC (proto-plus / protobuf) messages and the JSON-shaped dicts djdeploy speaks."""

from __future__ import annotations

import json
from typing import Any


def to_dict(message: Any) -> dict[str, Any]:
    """A proto-plus message as the JSON the API sends: camelCase, enum names, no defaults."""
    out: dict[str, Any] = type(message).to_dict(
        message,
        preserving_proto_field_name=False,
        use_integers_for_enums=False,
        always_print_fields_with_no_presence=False,
    )
    return out


def from_dict(cls: Any, body: dict[str, Any]) -> Any:
    """A proto-plus message from a JSON-shaped dict; unknown fields are a bug, so they fail."""
    return cls.from_json(json.dumps(body), ignore_unknown_fields=False)


def policy_to_dict(policy: Any) -> dict[str, Any]:
    """An IAM v1 Policy protobuf as {"version", "etag", "bindings": [{role, members}]}."""
    from google.protobuf import json_format

    d = json_format.MessageToDict(policy)
    return {
        "version": int(d.get("version", 1) or 1),
        "etag": d.get("etag", ""),
        "bindings": [
            {k: v for k, v in b.items() if k in ("role", "members", "condition")}
            for b in d.get("bindings", [])
        ],
    }


def policy_from_dict(policy: dict[str, Any]) -> Any:
    """The IAM v1 Policy protobuf for a policy dict (no etag: an unconditional write)."""
    from google.iam.v1 import policy_pb2
    from google.protobuf import json_format

    body = {k: v for k, v in policy.items() if k in ("version", "etag", "bindings")}
    if not body.get("etag"):
        body.pop("etag", None)
    return json_format.ParseDict(body, policy_pb2.Policy())
