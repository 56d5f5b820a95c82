"""Revisions: created by a service's or a worker pool's deploy when its template changed, made
Ready or Failed when the deploy completes (conditions Ready, ResourcesAvailable,
ContainerHealthy, as Cloud Run reports them), read and deleted by clients (a revision serving
traffic, or running a worker pool's instances, stays)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..local.serving import FAILED, STARTING
from ..logging.simulated import revision_settled
from ..operations import NotYet
from .common import (
    REVISION_KIND,
    SERVICE_KIND,
    WORKER_POOL_KIND,
    Change,
    Parent,
    check_etag,
    condition,
    delete,
    failed_precondition,
    must,
    now,
    save,
)
from .readiness import template_problem
from .realize import instance_failure, revision_instance, stop_instance

if TYPE_CHECKING:
    from ..context import Emulator

#: the template fields a revision records
_FROM_TEMPLATE = (
    "labels",
    "annotations",
    "scaling",
    "vpcAccess",
    "maxInstanceRequestConcurrency",
    "timeout",
    "serviceAccount",
    "containers",
    "volumes",
    "executionEnvironment",
    "encryptionKey",
    "sessionAffinity",
)


def serving_revisions(svc: dict[str, Any]) -> set[str]:
    """The revisions a service routes traffic to (or reaches by a tag), by full name; the one it
    is rolling out counts too."""
    out = set()
    for target in svc.get("traffic") or []:
        if not (target.get("percent") or target.get("tag")):
            continue
        if target.get("revision"):
            out.add(f"{svc['name']}/revisions/{target['revision']}")
        elif svc.get("latestReadyRevision"):
            out.add(svc["latestReadyRevision"])
    if svc.get("reconciling") and svc.get("latestCreatedRevision"):
        out.add(svc["latestCreatedRevision"])
    return out


def running_revisions(pool: dict[str, Any]) -> set[str]:
    """The revisions a worker pool runs instances of (its latest ready one, those its instance
    splits name), and the one it is rolling out."""
    out = {pool["latestReadyRevision"]} if pool.get("latestReadyRevision") else set()
    for split in pool.get("instanceSplitStatuses") or []:
        if split.get("revision") and split.get("percent"):
            out.add(f"{pool['name']}/revisions/{split['revision']}")
    if pool.get("reconciling") and pool.get("latestCreatedRevision"):
        out.add(pool["latestCreatedRevision"])
    return out


@dataclass(frozen=True)
class Owner:
    """What revisions belong to: ``collection`` in names ("services"), its store ``kind``, its
    404 ``what``, its log resource (``log_type``, ``log_label``: the Logs URL) and the
    revisions it uses (``in_use``: they cannot be deleted)."""

    collection: str
    kind: str
    what: str
    log_type: str
    log_label: str
    in_use: Callable[[dict[str, Any]], set[str]]


SERVICES = Owner(
    "services", SERVICE_KIND, "SERVICE", "cloud_run_revision", "service_name", serving_revisions
)
WORKER_POOLS = Owner(
    "workerPools",
    WORKER_POOL_KIND,
    "WORKER_POOL",
    "cloud_run_worker_pool",
    "worker_pool_name",
    running_revisions,
)


def new_revision(
    emu: Emulator,
    parent: Parent,
    owner_id: str,
    revision: str,
    template: dict[str, Any],
    *,
    generation: int,
    owner: Owner = SERVICES,
) -> dict[str, Any]:
    """The record of a revision a deploy of service (or ``owner``) ``owner_id`` creates (not
    yet stored)."""
    at = now(emu)
    rev: dict[str, Any] = {
        "name": f"{parent.name}/{owner.collection}/{owner_id}/revisions/{revision}",
        "uid": str(uuid.uuid4()),
        "generation": "1",
        "createTime": at,
        "updateTime": at,
        "launchStage": "GA",
        "reconciling": True,
        "observedGeneration": "1",
        "conditions": [
            condition("ResourcesAvailable", "CONDITION_RECONCILING", at),
            condition("ContainerHealthy", "CONDITION_RECONCILING", at),
        ],
        "logUri": (
            f"https://console.cloud.google.com/logs/viewer?project={parent.pid}&resource="
            f"{owner.log_type}/{owner.log_label}/{owner_id}/revision_name/{revision}"
            f"&location={parent.location}"
        ),
        "_serviceGeneration": generation,
    }
    if owner is SERVICES:  # "the name of the parent service"
        rev["service"] = owner_id
    for key in _FROM_TEMPLATE:
        if key in template:
            rev[key] = copy.deepcopy(template[key])
    return rev


def settle(emu: Emulator, rev: dict[str, Any], *, pid: str, since: float) -> str | None:
    """Make a reconciling revision Ready or Failed (an outcome of kind ``revision`` for its
    service, a readiness problem of its template as of ``since``, or, run here, its startup
    probe: NotYet until it passes or fails); the problem or None."""
    template: dict[str, Any] = {k: rev[k] for k in ("containers", "serviceAccount") if k in rev}
    problem = emu.outcomes.take("revision", rev["service"])
    if problem is None:
        problem = template_problem(emu, pid, template, since, "Revision")
    local = None if problem is not None else revision_instance(emu, rev, pid=pid)
    if local == STARTING:
        raise NotYet()
    if local == FAILED:
        problem = f"{instance_failure(emu, rev['name'])}\n\nLogs URL: {rev['logUri']}"
        stop_instance(emu, rev["name"])
    if problem is not None:
        problem = not_ready(rev["name"], problem)
    conclude(emu, rev, problem)
    if local is None:  # an instance run here wrote its own lines
        revision_settled(emu, rev, problem=problem)
    return problem


def not_ready(revision: str, problem: str) -> str:
    """Cloud Run's message of a revision that failed: why, after which revision."""
    short = revision.rsplit("/", 1)[-1]
    return f"Revision '{short}' is not ready and cannot serve traffic. {problem}"


def conclude(emu: Emulator, rev: dict[str, Any], problem: str | None) -> None:
    """The reconciling revision is Ready, or Failed with ``problem`` (stored)."""
    at = now(emu)
    rev["reconciling"] = False
    if problem is not None:
        rev["conditions"] = [
            condition("ResourcesAvailable", "CONDITION_SUCCEEDED", at),
            condition("ContainerHealthy", "CONDITION_FAILED", at, message=problem),
            condition("Ready", "CONDITION_FAILED", at, message=problem),
        ]
    else:
        rev["conditions"] = [
            condition("Ready", "CONDITION_SUCCEEDED", at),
            condition("ResourcesAvailable", "CONDITION_SUCCEEDED", at),
            condition("ContainerHealthy", "CONDITION_SUCCEEDED", at),
        ]
        rev["_ready"] = True
    rev["updateTime"] = at
    save(emu, REVISION_KIND, rev)


def failure(rev: dict[str, Any]) -> str | None:
    """The message of a revision that already failed, else None."""
    if rev.get("_ready"):
        return None
    return next((c.get("message") for c in rev.get("conditions", []) if c["type"] == "Ready"), None)


class Revisions:
    """A service's revisions (or ``owner``'s: a worker pool's)."""

    def __init__(self, emu: Emulator, owner: Owner = SERVICES) -> None:
        self.emu = emu
        self.owner = owner

    def _owner_name(self, parent: Parent, owner_id: str) -> str:
        return f"{parent.name}/{self.owner.collection}/{owner_id}"

    def get(self, parent: Parent, owner_id: str, revision: str) -> dict[str, Any]:
        return must(
            self.emu,
            REVISION_KIND,
            f"{self._owner_name(parent, owner_id)}/revisions/{revision}",
            "REVISION",
        )

    def list(self, parent: Parent, owner_id: str) -> list[dict[str, Any]]:
        """Newest first."""
        name = self._owner_name(parent, owner_id)
        found = must(self.emu, self.owner.kind, name, self.owner.what)
        revs = [v for _, v in self.emu.store.list(REVISION_KIND, found["name"] + "/revisions/")]
        revs.sort(key=lambda r: (r["_serviceGeneration"], r["name"]), reverse=True)
        return revs

    def delete(
        self,
        parent: Parent,
        owner_id: str,
        revision: str,
        *,
        etag: str | None,
        validate_only: bool,
    ) -> Change:
        """A revision serving traffic, running a worker pool's instances or being rolled out
        cannot be deleted: 400 FAILED_PRECONDITION."""
        with self.emu.store.transaction():
            rev = self.get(parent, owner_id, revision)
            check_etag(rev, etag, f"revision '{revision}'")
            found = self.emu.store.get(self.owner.kind, self._owner_name(parent, owner_id))
            if found is not None and rev["name"] in self.owner.in_use(found):
                raise failed_precondition(
                    f"Revision '{revision}' cannot be deleted because it is serving traffic."
                )
            return delete(
                self.emu,
                parent,
                REVISION_KIND,
                rev,
                what="Revision",
                duration_kind="run.service.delete",
                validate_only=validate_only,
            )
