"""Worker pools: create / update (a deploy: a new generation, a new revision when the template
changed, Ready after ``run.service.deploy`` or Failed when the template cannot start), get,
list, delete.

A worker pool is a service without ingress: its revision template has no ports, and no probe
is defaulted (startup and liveness probes sent are kept, as Google's worker pool health-check
page describes), its instances are ``scaling.manualInstanceCount`` (default 1), its
``instanceSplits`` all on the latest ready revision unless sent (``instanceSplitStatuses``
follow them when a deploy succeeds). Its
revisions are resources as a service's (:mod:`.revisions`, owner WORKER_POOLS), Ready or Failed
with the deploy. With local execution, a deploy's new revision is tried first
(:func:`.realize.pool_trial`): Ready once its instances stayed up ``run.workerpool.start``,
Failed when one exited before (its lines and exit in Cloud Logging); a Ready pool's instances
run its latest ready revision as processes (:func:`.realize.pool_instances`), and a deploy that
fails leaves them running.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from ..errors import AlreadyExists, InvalidArgument
from ..local.workers import FAILED, STARTING
from ..operations import NotYet, completer
from . import templates
from .common import (
    REVISION_KIND,
    WORKER_POOL_KIND,
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
from .readiness import template_problem
from .realize import READY_TEMPLATE, abandon_trial, pool_instances, pool_trial, stop_pool
from .revisions import WORKER_POOLS, conclude, failure, new_revision, not_ready

if TYPE_CHECKING:
    from ..context import Emulator

#: the fields of a WorkerPool a create/update sets (all others are the server's)
_SPEC = (
    "description",
    "labels",
    "annotations",
    "client",
    "clientVersion",
    "launchStage",
    "binaryAuthorization",
    "customAudiences",
    "scaling",
    "instanceSplits",
)
#: how long a deploy takes (the latency kind services use: the same rollout)
DEPLOY = "run.service.deploy"
#: the outcome kind that fails a worker pool's next revision (matched on the pool's id)
OUTCOME = "workerpool"
#: ``instanceSplits`` when a create/update leaves them out: "If instance split is empty or not
#: provided, defaults to 100% instances assigned to the latest Ready Revision" (the WorkerPool
#: proto); the entry's shape is a service's default ``traffic`` entry's
LATEST_SPLIT = {"type": "INSTANCE_SPLIT_ALLOCATION_TYPE_LATEST", "percent": 100}
#: why a revision tried here failed. Unconfirmed: Google documents neither the words of a
#: worker pool revision whose container exits nor the reason it gives (its worker pool
#: health-check page says only that Cloud Run limits the restarts of a crash-looping
#: instance); these follow a service revision's that fails to start (local/serving.py's "The
#: user-provided container ..."), and the pool's terminalCondition takes REVISION_FAILED, the
#: Condition.CommonReason "Revision creation process failed." of the run v2 protos.
EXITED_EARLY = (
    "The user-provided container exited with code {code} before it started (instance {index}). "
    "Logs for this revision might contain more information."
)


def pool_template(t: dict[str, Any], number: str) -> dict[str, Any]:
    """A worker pool's revision template with the server's defaults (no ports, no probe
    added)."""
    t = copy.deepcopy(t)
    containers = t.get("containers") or []
    if not containers:
        raise InvalidArgument("template.containers: at least one container must be specified.")
    for ci, c in enumerate(containers):
        if not c.get("image"):
            raise InvalidArgument(f"template.containers[{ci}].image: Field is required.")
        if c.get("ports"):  # an assumption: Google gives worker pools no port setting (no
            # --port on `gcloud run worker-pools deploy`); the words are the emulator's
            raise InvalidArgument(
                f"template.containers[{ci}].ports: worker pools do not accept ports."
            )
        limits = c.setdefault("resources", {}).setdefault("limits", {})
        limits.setdefault("cpu", "1000m")
        limits.setdefault("memory", "512Mi")
    t.setdefault("serviceAccount", templates.compute_sa(number))
    return t


class WorkerPools(Collection):
    kind = WORKER_POOL_KIND
    collection = "workerPools"
    what = "WORKER_POOL"
    type_name = "WorkerPool"
    children = (REVISION_KIND,)
    delete_duration = "run.service.delete"

    def deleting(self, pool: dict[str, Any]) -> None:
        pool["reconciling"] = True

    def delete(self, parent: Parent, rid: str, *, etag: str | None, validate_only: bool) -> Change:
        """Its instances stop with it."""
        change = super().delete(parent, rid, etag=etag, validate_only=validate_only)
        if not validate_only and not change.kept:
            stop_pool(self.emu, self._key(parent, rid))
        return change

    def apply(
        self, parent: Parent, pool: dict[str, Any], spec: dict[str, Any], *, validate_only: bool
    ) -> Change:
        """A deploy: a new generation, a new revision when the template changed, reconciling
        until the deploy's operation completes."""
        emu = self.emu
        at = now(emu)
        template = pool_template(spec.get("template") or {}, parent.number)
        templates.check(template, spec=templates.REVISION_SPEC)
        templates.check_service_account(emu, template)
        scaling = dict(spec.get("scaling") or {})
        count = scaling.setdefault("manualInstanceCount", 1)
        if not 0 <= int(count) <= 1000:
            raise InvalidArgument(
                "spec.scaling.manualInstanceCount: must be between 0 and 1000 inclusive."
            )
        spec = {**spec, "scaling": scaling}
        set_spec(pool, spec, _SPEC)
        if not pool.get("instanceSplits"):
            pool["instanceSplits"] = [dict(LATEST_SPLIT)]
        pool.setdefault("launchStage", "GA")
        generation = next_generation(pool, at)
        rid = new_revision_id(pool, template, generation)
        rev: dict[str, Any] | None = None
        if rid is not None:
            pool_id = pool["name"].rsplit("/", 1)[-1]
            rev = new_revision(
                emu,
                parent,
                pool_id,
                rid,
                without_revision(template),
                generation=generation,
                owner=WORKER_POOLS,
            )
            if emu.store.get(REVISION_KIND, rev["name"]):
                raise AlreadyExists(f"Revision named '{rid}' already exists.")
            pool["latestCreatedRevision"] = rev["name"]
        pool["reconciling"] = True
        pool["terminalCondition"] = condition("Ready", "CONDITION_RECONCILING", at)
        pool["conditions"] = [condition("ConfigurationsReady", "CONDITION_RECONCILING", at)]
        if validate_only:
            return Change("WorkerPool", stamp(pool), None)
        if rev is not None:
            save(emu, REVISION_KIND, rev)
        save(emu, WORKER_POOL_KIND, pool)
        return start_op(
            emu,
            parent,
            completer_name="run.workerpool.deploy",
            duration_kind=DEPLOY,
            kind="WorkerPool",
            resource=pool,
            args={
                "pid": parent.pid,
                "generation": generation,
                "revision": pool.get("latestCreatedRevision", ""),
            },
        )

    def finish_deploy(self, op: dict[str, Any]) -> dict[str, Any] | None:
        """The deploy's completer: when no later deploy started, Ready (its instances run the
        new template) or Failed (why the template cannot start; the last ready one keeps
        running)."""
        emu = self.emu
        pool = emu.store.get(WORKER_POOL_KIND, op["target"])
        if pool is None:
            fail_op(op, "NOT_FOUND", "The worker pool was deleted while it was being deployed.")
            return None
        revision = op["args"].get("revision") or pool.get("latestCreatedRevision")
        rev = emu.store.get(REVISION_KIND, revision) if revision else None
        if rev is not None and not rev.get("reconciling"):
            problem = failure(rev)  # a redeploy of a spec whose revision already settled
        else:
            problem = self._settle(pool, op, revision, logs=(rev or {}).get("logUri", ""))
            if rev is not None:
                conclude(emu, rev, problem)
        types = ("ConfigurationsReady",)
        if settle_deploy(emu, pool, op, problem=problem, revision=revision, types=types):
            if problem is None:  # the splits took effect; a failure keeps the last ones
                pool[READY_TEMPLATE] = copy.deepcopy(pool["template"])
                pool["instanceSplitStatuses"] = copy.deepcopy(pool["instanceSplits"])
            save(emu, WORKER_POOL_KIND, pool)
            if problem is None:  # run here: its instances replace the previous revision's
                pool_instances(emu, pool, pid=op["args"]["pid"])
        return deploy_result(op, "WorkerPool", pool, problem)

    def _settle(
        self, pool: dict[str, Any], op: dict[str, Any], revision: str | None, *, logs: str
    ) -> str | None:
        """Why the deploy's revision cannot run (an outcome, its image or secrets, or, run
        here, an instance that did not stay up: ``logs`` is its Logs URL), in Cloud Run's
        words, or None."""
        emu, pid = self.emu, op["args"]["pid"]
        problem = emu.outcomes.take(OUTCOME, pool["name"].rsplit("/", 1)[-1])
        if problem is None:
            problem = template_problem(emu, pid, pool["template"], op["created"], "worker pool")
        current = int(pool["generation"]) == op["args"]["generation"]  # no later deploy
        if problem is None and current and revision != pool.get("latestReadyRevision"):
            problem = self._try(pool, pid=pid, logs=logs)
        return not_ready(revision, problem) if problem is not None and revision else problem

    def _try(self, pool: dict[str, Any], *, pid: str, logs: str) -> str | None:
        """Run here, the new revision's instances must stay up (NotYet until they have); why
        it failed (its instances stopped), or None (started, or simulated)."""
        trial = pool_trial(self.emu, pool, pid=pid)
        if trial is None or trial.state not in (STARTING, FAILED):
            return None
        if trial.state == STARTING:
            raise NotYet()
        abandon_trial(self.emu, pool)
        failed = EXITED_EARLY.format(code=trial.exit_code, index=trial.index)
        return f"{failed}\n\nLogs URL: {logs}" if logs else failed


@completer("run.workerpool.deploy")
def _finish_deploy(emu: Emulator, op: dict[str, Any]) -> dict[str, Any] | None:
    return WorkerPools(emu).finish_deploy(op)


def realize(emu: Emulator) -> None:
    """An emulator start: each worker pool's latest ready revision runs again."""
    for _, pool in emu.store.list(WORKER_POOL_KIND):
        if not pool.get("deleteTime"):
            pool_instances(emu, pool, pid=pool["name"].split("/")[1])
