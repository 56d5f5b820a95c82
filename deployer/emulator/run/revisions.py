"""Revisions: created by a service's deploy when its template changed, made Ready or Failed when
the deploy completes, read and deleted by clients (a revision serving traffic stays)."""

from __future__ import annotations

import copy
import uuid
from typing import TYPE_CHECKING, Any

from ..local.serving import FAILED, STARTING
from ..logging.simulated import revision_settled
from ..operations import NotYet
from .common import (
    REVISION_KIND,
    SERVICE_KIND,
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


def new_revision(
    emu: Emulator,
    parent: Parent,
    service: str,
    revision: str,
    template: dict[str, Any],
    *,
    generation: int,
) -> dict[str, Any]:
    """The record of a revision a deploy creates (not yet stored)."""
    at = now(emu)
    rev: dict[str, Any] = {
        "name": f"{parent.name}/services/{service}/revisions/{revision}",
        "uid": str(uuid.uuid4()),
        "generation": "1",
        "createTime": at,
        "updateTime": at,
        "launchStage": "GA",
        "service": service,
        "reconciling": True,
        "observedGeneration": "1",
        "conditions": [
            condition("ResourcesAvailable", "CONDITION_RECONCILING", at),
            condition("ContainerHealthy", "CONDITION_RECONCILING", at),
        ],
        "logUri": (
            f"https://console.cloud.google.com/logs/viewer?project={parent.pid}&resource="
            f"cloud_run_revision/service_name/{service}/revision_name/{revision}"
            f"&location={parent.location}"
        ),
        "_serviceGeneration": generation,
    }
    for key in _FROM_TEMPLATE:
        if key in template:
            rev[key] = copy.deepcopy(template[key])
    return rev


def settle(emu: Emulator, rev: dict[str, Any], *, pid: str, since: float) -> str | None:
    """Make a reconciling revision Ready or Failed (an outcome of kind ``revision`` for its
    service, a readiness problem of its template as of ``since``, or, run here, its startup
    probe: NotYet until it passes or fails); the problem or None."""
    at = now(emu)
    template: dict[str, Any] = {k: rev[k] for k in ("containers", "serviceAccount") if k in rev}
    problem = emu.outcomes.take("revision", rev["service"])
    if problem is None:
        problem = template_problem(emu, pid, template, since, "Revision")
    local = None if problem is not None else revision_instance(emu, rev, pid=pid)
    if local == STARTING:
        raise NotYet()
    if local == FAILED:
        problem = f"{instance_failure(emu, rev)}\n\nLogs URL: {rev['logUri']}"
        stop_instance(emu, rev["name"])
    short = rev["name"].rsplit("/", 1)[-1]
    rev["reconciling"] = False
    if problem is not None:
        problem = f"Revision '{short}' is not ready and cannot serve traffic. {problem}"
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
    if local is None:  # an instance run here wrote its own lines
        revision_settled(emu, rev, problem=problem)
    return problem


def failure(rev: dict[str, Any]) -> str | None:
    """The message of a revision that already failed, else None."""
    if rev.get("_ready"):
        return None
    return next((c.get("message") for c in rev.get("conditions", []) if c["type"] == "Ready"), None)


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


class Revisions:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def get(self, parent: Parent, service: str, revision: str) -> dict[str, Any]:
        return must(
            self.emu,
            REVISION_KIND,
            f"{parent.name}/services/{service}/revisions/{revision}",
            "REVISION",
        )

    def list(self, parent: Parent, service: str) -> list[dict[str, Any]]:
        """Newest first."""
        svc = must(self.emu, SERVICE_KIND, f"{parent.name}/services/{service}", "SERVICE")
        revs = [v for _, v in self.emu.store.list(REVISION_KIND, svc["name"] + "/revisions/")]
        revs.sort(key=lambda r: (r["_serviceGeneration"], r["name"]), reverse=True)
        return revs

    def delete(
        self,
        parent: Parent,
        service: str,
        revision: str,
        *,
        etag: str | None,
        validate_only: bool,
    ) -> Change:
        """A revision serving traffic (or being rolled out) cannot be deleted: 400
        FAILED_PRECONDITION."""
        with self.emu.store.transaction():
            rev = self.get(parent, service, revision)
            check_etag(rev, etag, f"revision '{revision}'")
            svc = self.emu.store.get(SERVICE_KIND, f"{parent.name}/services/{service}")
            if svc is not None and rev["name"] in serving_revisions(svc):
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
