"""IAM policies for every resource type (Google IAM v1 ``Policy`` shape), shared by all APIs.

``resource_key`` is any stable string naming the resource, e.g. ``projects/my-proj``,
``projects/my-proj/secrets/db-password``, ``projects/p/locations/l/services/s``, ``b/bucket``.

Semantics that bite in production:
- etags: a ``setIamPolicy`` carrying an etag that is not the current one fails (409 ABORTED;
  storage passes ``conflict_code=412``); without an etag the write is unconditional.
- a new service account is invisible to bindings until its ``_visibleAt`` (set by the IAM module
  from the ``iam.sa.propagation`` window): 400 "Service account ... does not exist.".
- each (resource, role, member) remembers when it was granted (:func:`granted_since`) so that an
  API can refuse to honour a grant before it has propagated (see :func:`effective`).
"""

from __future__ import annotations

import base64
import copy
from typing import TYPE_CHECKING, Any

from .errors import STATUS_BY_CODE, ApiError, InvalidArgument

if TYPE_CHECKING:
    from .context import Emulator

POLICY_KIND = "iam.policy"
GRANTED_KIND = "iam.granted"
SA_KIND = "iam.sa"
EMPTY_ETAG = "ACAB"
CONFLICT_MESSAGE = (
    "There were concurrent policy changes. Please retry the whole read-modify-write with "
    "exponential backoff."
)

_PLAIN_MEMBERS = frozenset({"allUsers", "allAuthenticatedUsers"})
_MEMBER_TYPES = frozenset(
    {
        "user",
        "group",
        "serviceAccount",
        "domain",
        "projectOwner",
        "projectEditor",
        "projectViewer",
        "principal",
        "principalSet",
        "deleted",
    }
)


def new_etag(emu: Emulator) -> str:
    n = emu.store.next_id("iam.etag")
    return base64.b64encode(b"\x07" + n.to_bytes(7, "big")).decode()


def get_policy(emu: Emulator, resource_key: str) -> dict[str, Any]:
    stored = emu.store.get(POLICY_KIND, resource_key)
    if stored is None:
        return {"version": 1, "etag": EMPTY_ETAG, "bindings": []}
    return copy.deepcopy(stored)


def render(policy: dict[str, Any]) -> dict[str, Any]:
    """The policy as Google sends it: empty ``bindings`` omitted (proto3 JSON drops them)."""
    out = {k: v for k, v in policy.items() if not (k == "bindings" and not v)}
    return out


def _check_member(emu: Emulator, member: str) -> None:
    if member in _PLAIN_MEMBERS:
        return
    kind, sep, value = member.partition(":")
    if not sep or kind not in _MEMBER_TYPES or not value:
        raise InvalidArgument(f"Invalid member: {member}")
    if kind == "serviceAccount" and _user_managed(value):
        sa = emu.store.get(SA_KIND, value)
        if sa is None or float(sa.get("_visibleAt", 0.0)) > emu.clock():
            raise InvalidArgument(f"Service account {value} does not exist.")


def _user_managed(email: str) -> bool:
    """Only user-managed accounts (<id>@<project>.iam.gserviceaccount.com) are checked; Google's
    own (…@cloudbuild.gserviceaccount.com, …-compute@developer…, service agents at gcp-sa-*)
    are taken as existing."""
    _, _, domain = email.partition("@")
    return domain.endswith(".iam.gserviceaccount.com") and not domain.startswith("gcp-sa-")


def set_policy(
    emu: Emulator, resource_key: str, policy: dict[str, Any], *, conflict_code: int = 409
) -> dict[str, Any]:
    """Replace the policy (read-modify-write guarded by the etag); returns the stored policy."""
    bindings_in = policy.get("bindings") or []
    if not isinstance(bindings_in, list):
        raise InvalidArgument("Invalid JSON payload received. 'bindings' must be a list.")
    # merge duplicate roles (same role + same condition), drop empty bindings
    merged: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for b in bindings_in:
        role = b.get("role")
        if not role or not isinstance(role, str):
            raise InvalidArgument("Policy binding has no role.")
        members = b.get("members") or []
        for m in members:
            _check_member(emu, m)
        ck = role + "|" + repr(sorted((b.get("condition") or {}).items()))
        if ck not in merged:
            nb: dict[str, Any] = {"role": role, "members": []}
            if b.get("condition"):
                nb["condition"] = b["condition"]
            merged[ck] = nb
            order.append(ck)
        for m in members:
            if m not in merged[ck]["members"]:
                merged[ck]["members"].append(m)
    bindings = [merged[k] for k in order if merged[k]["members"]]
    for b in bindings:
        b["members"].sort()
    has_condition = any("condition" in b for b in bindings)

    with emu.store.transaction():
        current = get_policy(emu, resource_key)
        etag = policy.get("etag")
        if etag and etag != current["etag"]:
            status = "ABORTED" if conflict_code == 409 else STATUS_BY_CODE.get(conflict_code)
            raise ApiError(conflict_code, CONFLICT_MESSAGE, status=status)
        version = int(policy.get("version") or 1)
        if has_condition:
            version = 3
        elif version not in (1, 3):
            raise InvalidArgument(f"Invalid policy version {version}.")
        new: dict[str, Any] = {"version": version, "etag": new_etag(emu), "bindings": bindings}
        if policy.get("auditConfigs"):
            new["auditConfigs"] = policy["auditConfigs"]
        _record_grants(emu, resource_key, current["bindings"], bindings)
        emu.store.put(POLICY_KIND, resource_key, new)
    return copy.deepcopy(new)


def delete_policy(emu: Emulator, resource_key: str) -> None:
    """Forget the resource's policy and every grant record of it (a resource deleted and created
    again starts with no grants, as on Google)."""
    with emu.store.transaction():
        emu.store.delete(POLICY_KIND, resource_key)
        for key, _ in emu.store.list(GRANTED_KIND, resource_key + "|"):
            emu.store.delete(GRANTED_KIND, key)


def _pairs(bindings: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(b["role"], m) for b in bindings for m in b.get("members", [])}


def _grant_key(resource_key: str, role: str, member: str) -> str:
    return f"{resource_key}|{role}|{member}"


def _record_grants(
    emu: Emulator, resource_key: str, old: list[dict[str, Any]], new: list[dict[str, Any]]
) -> None:
    before, after = _pairs(old), _pairs(new)
    now = emu.clock()
    for role, member in after - before:
        emu.store.put(GRANTED_KIND, _grant_key(resource_key, role, member), {"at": now})
    for role, member in before - after:
        emu.store.delete(GRANTED_KIND, _grant_key(resource_key, role, member))


def move_grant(emu: Emulator, resource_key: str, role: str, old: str, new: str) -> None:
    """The grant record of ``old`` now belongs to ``new`` (a deleted account's binding becomes
    ``deleted:serviceAccount:...``): an account created again under the same email has none."""
    rec = emu.store.get(GRANTED_KIND, _grant_key(resource_key, role, old))
    if rec is None:
        return
    emu.store.delete(GRANTED_KIND, _grant_key(resource_key, role, old))
    emu.store.put(GRANTED_KIND, _grant_key(resource_key, role, new), rec)


def granted_since(emu: Emulator, resource_key: str, role: str, member: str) -> float | None:
    """When ``member`` was granted ``role`` on the resource (clock seconds), None if it is not."""
    rec = emu.store.get(GRANTED_KIND, _grant_key(resource_key, role, member))
    return float(rec["at"]) if rec else None


def has_binding(emu: Emulator, resource_key: str, role: str, member: str) -> bool:
    return (role, member) in _pairs(get_policy(emu, resource_key)["bindings"])


def effective(
    emu: Emulator,
    resource_key: str,
    role: str,
    member: str,
    propagation_kind: str = "iam.secret_grant.propagation",
) -> bool:
    """True when the grant exists and its propagation window (latency kind) has passed."""
    at = granted_since(emu, resource_key, role, member)
    if at is None:
        return False
    return emu.clock() >= at + emu.latency.duration(propagation_kind)
