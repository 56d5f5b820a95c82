"""Services: create / update (a deploy: a new generation, a new revision when the template
changed, Ready after ``run.service.deploy``), get, list, delete."""

from __future__ import annotations

import hashlib
import string
import sys
from typing import TYPE_CHECKING, Any

from deployer.regions import RUN_APP_CODES

from ..errors import AlreadyExists, ApiError
from ..local.serving import FAILED, STARTING
from ..operations import NotYet, completer
from . import templates
from .common import (
    REVISION_KIND,
    SERVICE_KIND,
    Change,
    Collection,
    Parent,
    condition,
    deploy_result,
    fail_op,
    new_revision_id,
    next_generation,
    now,
    save,
    set_spec,
    settle_deploy,
    stamp,
    start_op,
    without_revision,
)
from .realize import instance_failure, retire, revision_instance
from .revisions import failure, new_revision, not_ready, serving_revisions, settle

if TYPE_CHECKING:
    from ..context import Emulator

#: the fields of a Service a create/update sets (all others are the server's)
_SPEC = (
    "description",
    "labels",
    "annotations",
    "client",
    "clientVersion",
    "ingress",
    "launchStage",
    "binaryAuthorization",
    "traffic",
    "scaling",
    "invokerIamDisabled",
    "defaultUriDisabled",
    "customAudiences",
    "iapEnabled",
)


def _uri(service: str, pid: str, location: str) -> str:
    h = hashlib.sha256(f"{pid}/{location}/{service}".encode()).hexdigest()
    alphabet = string.ascii_lowercase + string.digits
    tag = "".join(alphabet[int(h[i : i + 2], 16) % len(alphabet)] for i in range(0, 20, 2))
    code = RUN_APP_CODES.get(location) or "".join(
        string.ascii_lowercase[int(h[20 + i : 22 + i], 16) % 26] for i in (0, 2)
    )
    return f"https://{service}-{tag}-{code}.a.run.app"


class Services(Collection):
    kind = SERVICE_KIND
    collection = "services"
    what = "SERVICE"
    type_name = "Service"
    children = (REVISION_KIND,)
    delete_duration = "run.service.delete"

    def deleting(self, svc: dict[str, Any]) -> None:
        svc["reconciling"] = True

    def delete(self, parent: Parent, rid: str, *, etag: str | None, validate_only: bool) -> Change:
        """Its revisions' instances stop with it."""
        change = super().delete(parent, rid, etag=etag, validate_only=validate_only)
        if not validate_only and not change.kept:
            retire(self.emu, self._key(parent, rid), set())
        return change

    def apply(
        self, parent: Parent, svc: dict[str, Any], spec: dict[str, Any], *, validate_only: bool
    ) -> Change:
        """A deploy: a new generation, a new revision when the template changed, reconciling
        until ``run.service.deploy`` passes."""
        emu = self.emu
        at = now(emu)
        template = templates.revision_template(spec.get("template") or {}, parent.number)
        templates.check(template, spec=templates.REVISION_SPEC, service=True)
        templates.check_service_account(emu, template)
        set_spec(svc, spec, _SPEC)
        svc.setdefault("ingress", "INGRESS_TRAFFIC_ALL")
        svc.setdefault("launchStage", "GA")
        if not svc.get("traffic"):
            svc["traffic"] = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]
        generation = next_generation(svc, at)
        rid = new_revision_id(svc, template, generation)
        sid = svc["name"].rsplit("/", 1)[-1]
        rev: dict[str, Any] | None = None
        if rid is not None:
            rev = new_revision(
                emu, parent, sid, rid, without_revision(template), generation=generation
            )
            if emu.store.get(REVISION_KIND, rev["name"]):
                raise AlreadyExists(f"Revision named '{rid}' already exists.")
            svc["latestCreatedRevision"] = rev["name"]
        svc["reconciling"] = True
        svc["terminalCondition"] = condition("Ready", "CONDITION_RECONCILING", at)
        svc["conditions"] = [
            condition("RoutesReady", "CONDITION_RECONCILING", at),
            condition("ConfigurationsReady", "CONDITION_RECONCILING", at),
        ]
        uri = _uri(sid, parent.pid, parent.location)
        svc.setdefault("uri", uri)
        svc.setdefault("urls", [f"https://{sid}-{parent.number}.{parent.location}.run.app", uri])
        if validate_only:
            return Change("Service", stamp(svc), None)
        if rev is not None:
            save(emu, REVISION_KIND, rev)
        save(emu, SERVICE_KIND, svc)
        return start_op(
            emu,
            parent,
            completer_name="run.service.deploy",
            duration_kind="run.service.deploy",
            kind="Service",
            resource=svc,
            args={
                "pid": parent.pid,
                "generation": generation,
                "revision": svc.get("latestCreatedRevision", ""),
            },
        )

    def finish_deploy(self, op: dict[str, Any]) -> dict[str, Any] | None:
        """The deploy's completer: settle its revision; when no later deploy started, the
        service is Ready (the revision serves) or Failed (the previous one keeps serving)."""
        emu = self.emu
        svc = emu.store.get(SERVICE_KIND, op["target"])
        if svc is None:
            fail_op(op, "NOT_FOUND", "The service was deleted while it was being deployed.")
            return None
        rev_name = op["args"]["revision"]
        rev = emu.store.get(REVISION_KIND, rev_name) if rev_name else None
        problem: str | None = None
        if rev is not None and rev.get("reconciling"):
            problem = settle(emu, rev, pid=op["args"]["pid"], since=op["created"])
        elif rev is not None:
            problem = failure(rev)  # a redeploy of a spec whose revision already failed
        types = ("RoutesReady", "ConfigurationsReady")
        if settle_deploy(emu, svc, op, problem=problem, revision=rev_name, types=types):
            if problem is None:
                problem = _route(emu, svc)
            if problem is not None:  # settled Failed: the traffic stays where it served
                settle_deploy(emu, svc, op, problem=problem, revision=rev_name, types=types)
                print(
                    f"djdeploy emulator: deploy of {svc['name']} failed: {problem}", file=sys.stderr
                )
            save(emu, SERVICE_KIND, svc)
            retire(emu, svc["name"], serving_revisions(_served(svc)))
        return deploy_result(op, "Service", svc, problem)


def _served(svc: dict[str, Any]) -> dict[str, Any]:
    """The service as its traffic is served (``trafficStatuses``), not as it is asked."""
    return {**svc, "traffic": svc.get("trafficStatuses") or []}


def _route(emu: Emulator, svc: dict[str, Any]) -> str | None:
    """Start what the new traffic reaches and report it as served once it answers (NotYet
    while an instance started again, after a rollback or its undo, has not passed its startup
    probe: Cloud Run holds the requests meanwhile, it never answers 503); why not (a revision
    that cannot start, e.g. its secret version was disabled, or whose instance failed), or
    None."""
    try:
        states = serve(emu, svc)
    except ApiError as exc:
        return exc.message
    if STARTING in states.values():
        raise NotYet()
    failed = next((name for name, state in states.items() if state == FAILED), None)
    if failed is not None:
        return not_ready(failed, instance_failure(emu, failed))
    svc["trafficStatuses"] = [
        {k: target[k] for k in ("type", "revision", "percent", "tag") if target.get(k)}
        for target in svc.get("traffic") or []
    ]
    return None


@completer("run.service.deploy")
def _finish_deploy(emu: Emulator, op: dict[str, Any]) -> dict[str, Any] | None:
    return Services(emu).finish_deploy(op)


def serve(emu: Emulator, svc: dict[str, Any]) -> dict[str, str]:
    """Each Ready revision the service routes traffic to runs here (it answers once its startup
    probe passes): at an emulator start, and after a deploy that moved the traffic back to a
    revision whose instance had stopped (a rollback, or its undo). Each revision run here ->
    its instance's state."""
    pid = svc["name"].split("/")[1]
    states: dict[str, str] = {}
    for name in sorted(serving_revisions(svc)):
        rev = emu.store.get(REVISION_KIND, name)
        state = revision_instance(emu, rev, pid=pid) if rev and rev.get("_ready") else None
        if state is not None:
            states[name] = state
    return states


def realize(emu: Emulator) -> None:
    """An emulator start: each Ready revision that serves traffic runs again."""
    for name, svc in emu.store.list(SERVICE_KIND):
        try:
            serve(emu, _served(svc))
        except ApiError as exc:
            print(f"djdeploy emulator: service {name}: {exc.message}", file=sys.stderr)
