"""The one IAM read-modify-write, for every resource that has a policy.

    ensure_bindings(cloud, get=..., set=..., wanted={role: {member, ...}}, key=...,
                    unwanted={role: {member, ...}}) -> bool
    remove_bindings(cloud, get=..., set=..., unwanted={role: {member, ...}}, key=...) -> bool
    missing_bindings(policy, wanted) -> {role: {member, ...}}      (pure: for diff())

Policies are in the IAM v1 shape {"version", "etag", "bindings": [{"role", "members"}]}.
Read (version 3), change only the members named, write back with the etag that was read; skip
the write when nothing changes. Within this process, writes to one resource are serialized by a
lock per ``key`` (e.g. "projects/p", "b/bucket"), held for one read-modify-write, never while
sleeping between attempts.

Retries, and their bound. There are two layers, each retrying what the other does not:

- ``get`` and ``set`` are wrapper calls that already go through ``cloud.call``: each rides out
  transient errors (429, 5xx, resets) on its own, at most ``retry.call``'s 8 tries.
- The read-modify-write as a whole is redone, with backoff, only when the write is refused
  for a reason a fresh read fixes: a concurrent change (409 ABORTED, storage 412,
  ``retry.POLICY_CONFLICT``) or, for callers that pass it in ``retry_on``, a member IAM does
  not see yet (a new service account). At most ``attempts`` read-modify-writes
  (``RMW_ATTEMPTS`` = 8 by default; steps/iam.py passes 12: about two minutes of backoff).

So one call makes at most ``attempts`` x 2 x 8 requests, and a transient error is never
retried by the outer layer (it is not in its predicates) nor a conflict by the inner one.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from deployer.gcp import retry
from deployer.gcp.context import Context

Policy = dict[str, Any]
Predicate = Callable[[BaseException], bool]
T = TypeVar("T")

#: read-modify-writes one call makes at most (each of its get/set retries transient errors)
RMW_ATTEMPTS = 8

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


def _read_modify_write(
    cloud: Context,
    once: Callable[[], T],
    *,
    key: str,
    retry_on: tuple[Predicate, ...],
    attempts: int,
) -> T:
    """Run ``once`` (one read-modify-write) under the resource's lock, redoing it on a policy
    conflict or what ``retry_on`` names, at most ``attempts`` times; the lock is released
    while the retry sleeps."""

    def locked() -> T:
        with _lock(key):
            return once()

    return cloud.call(locked, retry_on=retry.POLICY_CONFLICT + retry_on, attempts=attempts)


def ensure_bindings(
    cloud: Context,
    *,
    get: Callable[[], Policy],
    set: Callable[[Policy], Policy],
    wanted: Mapping[str, set[str]],
    key: str = "",
    unwanted: Mapping[str, set[str]] | None = None,
    retry_on: tuple[Predicate, ...] = (),
    attempts: int = RMW_ATTEMPTS,
) -> bool:
    """Grant every (role, member) of ``wanted`` and revoke those of ``unwanted`` still
    granted, in one write; True when a write was made. ``retry_on`` adds reasons to redo the
    read-modify-write (see the module's docstring for the bound)."""

    def rmw() -> bool:
        policy = get()
        missing = missing_bindings(policy, wanted)
        revoked = present_bindings(policy, unwanted or {})
        if not missing and not revoked:
            return False
        set(_without(_with_added(policy, missing), revoked))
        return True

    return _read_modify_write(
        cloud, rmw, key=key or f"anonymous:{id(get)}", retry_on=retry_on, attempts=attempts
    )


def remove_bindings(
    cloud: Context,
    *,
    get: Callable[[], Policy],
    set: Callable[[Policy], Policy],
    unwanted: Mapping[str, set[str]],
    key: str = "",
    retry_on: tuple[Predicate, ...] = (),
    attempts: int = RMW_ATTEMPTS,
) -> bool:
    """Revoke every (role, member) of ``unwanted`` (and the deleted-account tombstones of
    those members); True when a write was made."""

    def rmw() -> bool:
        policy = get()
        if not present_bindings(policy, unwanted):
            return False
        set(_without(policy, unwanted))
        return True

    return _read_modify_write(
        cloud, rmw, key=key or f"anonymous:{id(get)}", retry_on=retry_on, attempts=attempts
    )
