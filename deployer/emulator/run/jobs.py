"""Jobs: create / update (reconciling for ``run.job.update``, then Ready), get, list, delete
(its executions go with it)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from ..operations import completer
from . import templates
from .common import (
    EXECUTION_KIND,
    JOB_KIND,
    Change,
    Collection,
    Parent,
    any_packed,
    condition,
    fail_op,
    next_generation,
    now,
    public,
    save,
    set_spec,
    stamp,
    start_op,
)

if TYPE_CHECKING:
    from ..context import Emulator

#: the fields of a Job a create/update sets (all others are the server's)
_SPEC = (
    "labels",
    "annotations",
    "client",
    "clientVersion",
    "launchStage",
    "binaryAuthorization",
)


class Jobs(Collection):
    kind = JOB_KIND
    collection = "jobs"
    what = "JOB"
    type_name = "Job"
    children = (EXECUTION_KIND,)
    delete_duration = "run.job.update"

    def delete(self, parent: Parent, rid: str, *, etag: str | None, validate_only: bool) -> Change:
        """Its executions' running tasks are killed with it."""
        change = super().delete(parent, rid, etag=etag, validate_only=validate_only)
        local = self.emu.local.jobs
        if local is not None and not validate_only and not change.kept:
            local.cancel(self._key(parent, rid))
        return change

    def apply(
        self, parent: Parent, job: dict[str, Any], spec: dict[str, Any], *, validate_only: bool
    ) -> Change:
        """A new generation, reconciling until ``run.job.update`` passes."""
        emu = self.emu
        at = now(emu)
        template = copy.deepcopy(spec.get("template") or {})
        template["template"] = templates.task_template(
            template.get("template") or {}, parent.number
        )
        templates.check(template["template"], spec=templates.TASK_SPEC)
        templates.check_service_account(emu, template["template"])
        template.setdefault("taskCount", 1)
        set_spec(job, spec, _SPEC)
        job["template"] = template
        job.setdefault("launchStage", "GA")
        next_generation(job, at)
        job["reconciling"] = True
        job["terminalCondition"] = condition("Ready", "CONDITION_RECONCILING", at)
        if validate_only:
            return Change("Job", stamp(job), None)
        save(emu, JOB_KIND, job)
        return start_op(
            emu,
            parent,
            completer_name="run.job.update",
            duration_kind="run.job.update",
            kind="Job",
            resource=job,
            args={"generation": int(job["generation"])},
        )

    def finish_update(self, op: dict[str, Any]) -> dict[str, Any] | None:
        """The update's completer: Ready, unless a later update started meanwhile."""
        job = self.emu.store.get(JOB_KIND, op["target"])
        if job is None:
            fail_op(op, "NOT_FOUND", "The job was deleted while it was being updated.")
            return None
        if int(job["generation"]) == op["args"]["generation"]:
            job["reconciling"] = False
            job["observedGeneration"] = job["generation"]
            job["terminalCondition"] = condition("Ready", "CONDITION_SUCCEEDED", now(self.emu))
            save(self.emu, JOB_KIND, job)
        op["metadata"]["resource"] = public(job)
        return any_packed("Job", job)


@completer("run.job.update")
def _finish_update(emu: Emulator, op: dict[str, Any]) -> dict[str, Any] | None:
    return Jobs(emu).finish_update(op)
