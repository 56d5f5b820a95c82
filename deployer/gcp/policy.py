"""The one IAM read-modify-write, for every resource that has a policy.

    ensure_bindings(cloud, get=..., set=..., wanted={role: {member, ...}}, key=...) -> bool
    remove_bindings(cloud, get=..., set=..., unwanted={role: {member, ...}}, key=...) -> bool
    missing_bindings(policy, wanted) -> {role: {member, ...}}      (pure: for diff())

Policies are in the IAM v1 shape {"version", "etag", "bindings": [{"role", "members"}]}.
Read (version 3), change only the members named, write back with the etag that was read; skip
the write when nothing changes. A concurrent change (409 ABORTED, storage 412) redoes the whole
read-modify-write with backoff (cloud.call with retry.POLICY_CONFLICT). Within this process,
writes to one resource are serialized by a lock per ``key`` (e.g. "projects/p", "b/bucket").
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from deployer.gcp import retry

if TYPE_CHECKING:
    from deployer.gcp.cloud import Cloud

Policy = dict[str, Any]

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def _members(policy: Policy | None, role: str) -> set[str]:
    out: set[str] = set()
    for b in (policy or {}).get("bindings") or []:
        if b.get("role") == role and not b.get("condition"):
            out.update(b.get("members") or [])
    return out


def missing_bindings(policy: Policy | None, wanted: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """{role: members} of ``wanted`` that the policy does not grant (unconditionally)."""
    out: dict[str, set[str]] = {}
    for role, members in wanted.items():
        missing = set(members) - _members(policy, role)
        if missing:
            out[role] = missing
    return out


def _is_tombstone_of(member: str, wanted: str) -> bool:
    """``deleted:serviceAccount:x@p.iam.gserviceaccount.com?uid=123`` is what a binding of a
    deleted account turns into."""
    return member.startswith(f"deleted:{wanted}?uid=")


def present_bindings(policy: Policy | None, members: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """{role: members} of ``members`` that the policy still grants (deleted-account
    tombstones of them included)."""
    out: dict[str, set[str]] = {}
    for role, wanted in members.items():
        have = _members(policy, role)
        found = {m for m in have for w in wanted if m == w or _is_tombstone_of(m, w)}
        if found:
            out[role] = found
    return out


def _with_added(policy: Policy, missing: Mapping[str, set[str]]) -> Policy:
    new = copy.deepcopy(policy)
    bindings: list[dict[str, Any]] = new.setdefault("bindings", [])
    for role, members in sorted(missing.items()):
        target = next((b for b in bindings if b["role"] == role and not b.get("condition")), None)
        if target is None:
            target = {"role": role, "members": []}
            bindings.append(target)
        target["members"] = sorted(set(target.get("members") or []) | set(members))
    new["version"] = 3
    return new


def _without(policy: Policy, unwanted: Mapping[str, set[str]]) -> Policy:
    new = copy.deepcopy(policy)
    kept = []
    for b in new.get("bindings") or []:
        drop = unwanted.get(b["role"], set()) if not b.get("condition") else set()
        members = [
            m
            for m in b.get("members") or []
            if m not in drop and not any(_is_tombstone_of(m, d) for d in drop)
        ]
        if members:
            kept.append({**b, "members": members})
    new["bindings"] = kept
    new["version"] = 3
    return new


def ensure_bindings(
    cloud: Cloud,
    *,
    get: Callable[[], Policy],
    set: Callable[[Policy], Policy],
    wanted: Mapping[str, set[str]],
    key: str = "",
) -> bool:
    """Grant every (role, member) of ``wanted``; True when a write was made."""

    def rmw() -> bool:
        policy = get()
        missing = missing_bindings(policy, wanted)
        if not missing:
            return False
        set(_with_added(policy, missing))
        return True

    with _lock(key or f"anonymous:{id(get)}"):
        return cloud.call(rmw, retry_on=retry.POLICY_CONFLICT)


def remove_bindings(
    cloud: Cloud,
    *,
    get: Callable[[], Policy],
    set: Callable[[Policy], Policy],
    unwanted: Mapping[str, set[str]],
    key: str = "",
) -> bool:
    """Revoke every (role, member) of ``unwanted`` (and the deleted-account tombstones of
    those members); True when a write was made."""

    def rmw() -> bool:
        policy = get()
        if not present_bindings(policy, unwanted):
            return False
        set(_without(policy, unwanted))
        return True

    with _lock(key or f"anonymous:{id(get)}"):
        return cloud.call(rmw, retry_on=retry.POLICY_CONFLICT)
