"""Executions: ``jobs/{j}:run`` creates one at once (all its tasks running); its operation
completes after ``run.execution``, succeeded or failed; get, list (newest first), cancel,
delete."""

from __future__ import annotations

import copy
import string
import uuid
from typing import TYPE_CHECKING, Any

from ..local.jobs import TaskResult
from ..logging.simulated import execution_completed
from ..operations import NotYet, completer
from .common import (
    CREATOR,
    EXECUTION_KIND,
    JOB_KIND,
    Change,
    Parent,
    any_packed,
    check_etag,
    condition,
    delete,
    fail_op,
    failed_precondition,
    must,
    now,
    parent,
    public,
    rand,
    save,
    snapshot_op,
    stamp,
    start_op,
)
from .jobs import Jobs
from .readiness import template_problem
from .realize import TIMEOUT as TIMED_OUT
from .realize import execution_run

if TYPE_CHECKING:
    from ..context import Emulator

#: the exit code of a task that failed by an outcome (a readiness problem means no container
#: ran, so no exit code)
FAILED_EXIT_CODE = 1


def _log_uri(pid: str, location: str, job: str, execution: str) -> str:
    return (
        f"https://console.cloud.google.com/logs/viewer?project={pid}&advancedFilter="
        "resource.type%3D%22cloud_run_job%22%0A"
        f"resource.labels.job_name%3D%22{job}%22%0A"
        f"resource.labels.location%3D%22{location}%22%0A"
        f"labels.%22run.googleapis.com/execution_name%22%3D%22{execution}%22"
    )


def _ref(execution: dict[str, Any], status: str) -> dict[str, Any]:
    """The job's ``latestCreatedExecution``."""
    ref = {
        "name": execution["name"].rsplit("/", 1)[-1],
        "createTime": execution["createTime"],
        "completionStatus": status,
    }
    if execution.get("completionTime"):
        ref["completionTime"] = execution["completionTime"]
    return ref


def _overridden(template: dict[str, Any], overrides: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """(task template, task count) of a run with ``overrides``."""
    task_template = copy.deepcopy(template["template"])
    task_count = int(overrides.get("taskCount") or template.get("taskCount") or 1)
    if overrides.get("timeout"):
        task_template["timeout"] = overrides["timeout"]
    for o in overrides.get("containerOverrides") or []:
        for c in task_template.get("containers", []):
            if o.get("name") in (None, "", c.get("name")):
                if o.get("args") or o.get("clearArgs"):
                    c["args"] = o.get("args") or []
                if o.get("env"):
                    c["env"] = o["env"]
    return task_template, task_count


def _record_tasks(execution: dict[str, Any], results: list[TaskResult]) -> str | None:
    """Keep a local run's task results on the execution (``_tasks``: what tasks.py answers);
    the execution's failure (its first failed task's), or None."""
    eid = execution["name"].rsplit("/", 1)[-1]
    execution["_tasks"] = [
        {"exitCode": r.exit_code, "retried": r.retried, "timedOut": r.timed_out} for r in results
    ]
    failed = next((r for r in results if not r.succeeded), None)
    if failed is None:
        return None
    execution["_exitCode"] = failed.exit_code
    if failed.timed_out:
        return f"Task {eid}-task{failed.index} failed with message: {TIMED_OUT}"
    return f"Task {eid}-task{failed.index} failed with exit code {failed.exit_code}."


def _stop_tasks(emu: Emulator, name: str) -> None:
    """A cancelled or deleted execution's running tasks are killed (SIGTERM, then SIGKILL)."""
    jobs = emu.local.jobs
    if jobs is not None:
        jobs.cancel(name)


def _count_tasks(execution: dict[str, Any]) -> None:
    tasks = execution["_tasks"]
    ok = sum(1 for t in tasks if t["exitCode"] == 0 and not t["timedOut"])
    for key, value in (
        ("succeededCount", ok),
        ("failedCount", len(tasks) - ok),
        ("retriedCount", sum(t["retried"] for t in tasks)),
    ):
        if value:
            execution[key] = value


class Executions:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def get(self, parent: Parent, job: str, execution: str) -> dict[str, Any]:
        return must(
            self.emu,
            EXECUTION_KIND,
            f"{parent.name}/jobs/{job}/executions/{execution}",
            "EXECUTION",
        )

    def list(self, parent: Parent, job: str) -> list[dict[str, Any]]:
        """Newest first."""
        found = Jobs(self.emu).get(parent, job)
        items = [v for _, v in self.emu.store.list(EXECUTION_KIND, found["name"] + "/executions/")]
        items.sort(key=lambda e: (e["createTime"], e["name"]), reverse=True)
        return items

    def run(
        self,
        parent: Parent,
        job: str,
        *,
        overrides: dict[str, Any],
        etag: str | None,
        validate_only: bool,
    ) -> Change:
        """A job being updated cannot run (400 FAILED_PRECONDITION)."""
        emu = self.emu
        with emu.store.transaction():
            found = Jobs(emu).get(parent, job)
            check_etag(found, etag, f"job '{job}'")
            if found.get("reconciling"):
                raise failed_precondition(
                    f"Job '{job}' is not ready: it is being updated. Wait for the update to finish."
                )
            at = now(emu)
            template = found["template"]
            task_template, task_count = _overridden(template, overrides)
            eid = f"{job}-{rand(5, string.ascii_lowercase + string.digits)}"
            execution: dict[str, Any] = {
                "name": f"{found['name']}/executions/{eid}",
                "uid": str(uuid.uuid4()),
                "creator": CREATOR,
                "generation": "1",
                "createTime": at,
                "startTime": at,
                "updateTime": at,
                "launchStage": found.get("launchStage", "GA"),
                "job": job,
                "taskCount": task_count,
                "template": task_template,
                "reconciling": True,
                "conditions": [
                    condition("ResourcesAvailable", "CONDITION_SUCCEEDED", at),
                    condition("Started", "CONDITION_SUCCEEDED", at),
                    condition("Completed", "CONDITION_PENDING", at),
                ],
                "observedGeneration": "1",
                "runningCount": task_count,
                "logUri": _log_uri(parent.pid, parent.location, job, eid),
            }
            for key in ("parallelism", "labels", "annotations"):
                if template.get(key):
                    execution[key] = copy.deepcopy(template[key])
            if validate_only:
                return Change("Execution", stamp(execution), None)
            save(emu, EXECUTION_KIND, execution)
            found["executionCount"] = int(found.get("executionCount", 0)) + 1
            found["latestCreatedExecution"] = _ref(execution, "EXECUTION_RUNNING")
            save(emu, JOB_KIND, found)
            return start_op(
                emu,
                parent,
                completer_name="run.execution",
                duration_kind="run.execution",
                kind="Execution",
                resource=execution,
                args={"pid": parent.pid, "job": job},
            )

    def finish(self, op: dict[str, Any]) -> dict[str, Any] | None:
        """The run's completer: every task succeeded, or every task failed (an outcome of kind
        ``execution`` for the job, or a readiness problem of the task template)."""
        emu = self.emu
        execution = emu.store.get(EXECUTION_KIND, op["target"])
        if execution is None:
            fail_op(op, "NOT_FOUND", "The execution was deleted.")
            return None
        if not execution.get("reconciling"):  # cancelled meanwhile
            op["metadata"]["resource"] = public(execution)
            return any_packed("Execution", execution)
        at = now(emu)
        eid = execution["name"].rsplit("/", 1)[-1]
        n = int(execution["taskCount"])
        problem = template_problem(
            emu, op["args"]["pid"], execution["template"], op["created"], "Job"
        )
        outcome = None if problem is not None else emu.outcomes.take("execution", op["args"]["job"])
        if outcome is not None:
            problem = outcome.replace("{execution}", eid) if outcome else ""
            problem = problem or f"Task {eid}-task0 failed with exit code 1."
            execution["_exitCode"] = FAILED_EXIT_CODE
        local = None
        if problem is None and outcome is None:
            local = execution_run(emu, execution, pid=op["args"]["pid"])
        if local is not None:
            results = local.results()
            if results is None:
                raise NotYet()
            problem = _record_tasks(execution, results)
        execution["reconciling"] = False
        execution.pop("runningCount", None)
        execution["completionTime"] = at
        execution["updateTime"] = at
        seconds = max(0, round(emu.clock() - op["created"]))
        if "_tasks" in execution:
            _count_tasks(execution)
        elif problem is None:
            execution["succeededCount"] = n
        else:
            execution["failedCount"] = n
            retries = n * int(execution["template"].get("maxRetries") or 0)
            if retries:
                execution["retriedCount"] = retries  # every task used its retries
        if problem is None:
            completed = condition(
                "Completed",
                "CONDITION_SUCCEEDED",
                at,
                message=f"Execution completed successfully in {seconds}s.",
            )
            status = "EXECUTION_SUCCEEDED"
        else:
            completed = condition(
                "Completed",
                "CONDITION_FAILED",
                at,
                message=problem,
                **({} if TIMED_OUT in problem else {"executionReason": "NON_ZERO_EXIT_CODE"}),
            )
            status = "EXECUTION_FAILED"
        execution["conditions"] = [*execution["conditions"][:2], completed]
        save(emu, EXECUTION_KIND, execution)
        if local is None:  # a local run's own lines are in the log already
            execution_completed(
                emu,
                execution,
                started=op["created"],
                problem=problem,
                exit_code=execution.get("_exitCode"),
            )
        else:
            jobs = emu.local.jobs
            if jobs is not None:
                jobs.forget(execution["name"])
        job = emu.store.get(JOB_KIND, execution["name"].split("/executions/")[0])
        if job is not None and (job.get("latestCreatedExecution") or {}).get("name") == eid:
            job["latestCreatedExecution"] = _ref(execution, status)
            save(emu, JOB_KIND, job)
        op["metadata"]["resource"] = public(execution)
        if problem is not None:
            fail_op(op, "FAILED_PRECONDITION", problem)
            return None
        return any_packed("Execution", execution)

    def cancel(
        self, parent: Parent, job: str, execution: str, *, etag: str | None, validate_only: bool
    ) -> Change:
        """A running execution stops (its running tasks cancelled); a finished one is
        answered as it is."""
        emu = self.emu
        with emu.store.transaction():
            found = self.get(parent, job, execution)
            check_etag(found, etag, f"execution '{execution}'")
            if found.get("reconciling"):
                at = now(emu)
                found["reconciling"] = False
                found["cancelledCount"] = found.pop("runningCount", 0) or found["taskCount"]
                found["completionTime"] = at
                found["conditions"] = [
                    *found["conditions"][:2],
                    condition(
                        "Completed",
                        "CONDITION_FAILED",
                        at,
                        message="The execution was cancelled.",
                        executionReason="CANCELLED",
                    ),
                ]
                stamp(found)
                if not validate_only:
                    save(emu, EXECUTION_KIND, found)
                    _stop_tasks(emu, found["name"])
            if validate_only:
                return Change("Execution", found, None)
            return snapshot_op(emu, parent, "Execution", found, "run.job.update")

    def delete(
        self, parent: Parent, job: str, execution: str, *, etag: str | None, validate_only: bool
    ) -> Change:
        with self.emu.store.transaction():
            found = self.get(parent, job, execution)
            check_etag(found, etag, f"execution '{execution}'")
            if not validate_only:
                _stop_tasks(self.emu, found["name"])
            return delete(
                self.emu,
                parent,
                EXECUTION_KIND,
                found,
                what="Execution",
                duration_kind="run.job.update",
                validate_only=validate_only,
            )


@completer("run.execution")
def _finish_execution(emu: Emulator, op: dict[str, Any]) -> dict[str, Any] | None:
    return Executions(emu).finish(op)


def run_job(
    emu: Emulator, project: str, location: str, job: str, *, overrides: dict[str, Any]
) -> str:
    """Start an execution of ``job`` as ``jobs:run`` does (what Cloud Scheduler's HTTP call to
    the Run API amounts to); the new execution's name."""
    change = Executions(emu).run(
        parent(emu, project, location), job, overrides=overrides, etag=None, validate_only=False
    )
    return str(change.resource["name"])
