"""Tasks: an execution's ``taskCount`` tasks, indexed from 0, named ``<execution>-task<i>``.

They are derived from the execution's stored state, never stored themselves: running while it
runs, all succeeded or all failed (after ``maxRetries`` retries, with the execution's message)
when it completes, cancelled when it was cancelled; they go when it is deleted."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from .common import Parent, condition, etag, missing
from .executions import Executions
from .realize import TIMEOUT as TIMED_OUT

if TYPE_CHECKING:
    from ..context import Emulator

#: the task template fields a task carries
_FROM_TEMPLATE = (
    "containers",
    "volumes",
    "maxRetries",
    "timeout",
    "serviceAccount",
    "executionEnvironment",
    "encryptionKey",
    "vpcAccess",
)
#: google.rpc.Code of a failed attempt: with an exit code (UNKNOWN), without one (the container
#: never started: FAILED_PRECONDITION)
_EXITED, _NOT_STARTED = 2, 9


def _completed(execution: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in execution["conditions"] if c["type"] == "Completed")


def task(execution: dict[str, Any], index: int) -> dict[str, Any]:
    """Task ``index`` of ``execution`` as Run answers it."""
    eid = execution["name"].rsplit("/", 1)[-1]
    template = execution.get("template") or {}
    done = _completed(execution)
    out: dict[str, Any] = {
        "name": f"{execution['name']}/tasks/{eid}-task{index}",
        "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{execution['uid']}/{index}")),
        "generation": "1",
        "observedGeneration": "1",
        "createTime": execution["createTime"],
        "scheduledTime": execution["createTime"],
        "startTime": execution["startTime"],
        "updateTime": execution["updateTime"],
        "job": execution["job"],
        "execution": eid,
        "index": index,
        "retried": 0,
        "reconciling": bool(execution.get("reconciling")),
        "logUri": execution["logUri"],
    }
    for key in ("labels", "annotations"):
        if execution.get(key):
            out[key] = dict(execution[key])
    out.update({k: template[k] for k in _FROM_TEMPLATE if k in template})
    conditions = [condition("Started", "CONDITION_SUCCEEDED", execution["startTime"])]
    if done["state"] == "CONDITION_PENDING":
        conditions.append(condition("Completed", "CONDITION_PENDING", done["lastTransitionTime"]))
    elif done.get("executionReason") == "CANCELLED":
        out["completionTime"] = execution["completionTime"]
        conditions.append(
            condition(
                "Completed",
                "CONDITION_FAILED",
                done["lastTransitionTime"],
                message="The task was cancelled.",
                executionReason="CANCELLED",
            )
        )
    elif "_tasks" in execution:
        out.update(_local(execution["_tasks"][index], execution, done, f"{eid}-task{index}"))
        conditions.append(out.pop("_condition"))
    elif done["state"] == "CONDITION_SUCCEEDED":
        out["completionTime"] = execution["completionTime"]
        out["lastAttemptResult"] = {"status": {}, "exitCode": 0}
        conditions.append(condition("Completed", "CONDITION_SUCCEEDED", done["lastTransitionTime"]))
    else:
        out["completionTime"] = execution["completionTime"]
        out["retried"] = int(template.get("maxRetries") or 0)
        exit_code = execution.get("_exitCode")
        status = {"code": _NOT_STARTED if exit_code is None else _EXITED}
        out["lastAttemptResult"] = {"status": {**status, "message": done.get("message", "")}}
        if exit_code is not None:
            out["lastAttemptResult"]["exitCode"] = exit_code
        conditions.append(
            condition(
                "Completed",
                "CONDITION_FAILED",
                done["lastTransitionTime"],
                message=done.get("message"),
                executionReason=done.get("executionReason"),
            )
        )
    out["conditions"] = conditions
    out["etag"] = etag(out)
    return out


def _local(
    result: dict[str, Any], execution: dict[str, Any], done: dict[str, Any], name: str
) -> dict[str, Any]:
    """The fields of a task run locally (its own exit code, retries, timeout) and its Completed
    condition (``_condition``)."""
    at = done["lastTransitionTime"]
    out: dict[str, Any] = {
        "completionTime": execution["completionTime"],
        "retried": result["retried"],
    }
    code = result["exitCode"]
    if code == 0 and not result["timedOut"]:
        out["lastAttemptResult"] = {"status": {}, "exitCode": 0}
        out["_condition"] = condition("Completed", "CONDITION_SUCCEEDED", at)
        return out
    if result["timedOut"]:
        message = f"Task {name} failed with message: {TIMED_OUT}"
    else:
        message = f"Task {name} failed with exit code {code}."
    out["lastAttemptResult"] = {"status": {"code": _EXITED, "message": message}, "exitCode": code}
    out["_condition"] = condition(
        "Completed",
        "CONDITION_FAILED",
        at,
        message=message,
        **({} if result["timedOut"] else {"executionReason": "NON_ZERO_EXIT_CODE"}),
    )
    return out


class Tasks:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def list(self, parent: Parent, job: str, execution: str) -> list[dict[str, Any]]:
        """By index."""
        found = Executions(self.emu).get(parent, job, execution)
        return [task(found, i) for i in range(int(found["taskCount"]))]

    def get(self, parent: Parent, job: str, execution: str, name: str) -> dict[str, Any]:
        found = Executions(self.emu).get(parent, job, execution)
        names = {f"{execution}-task{i}": i for i in range(int(found["taskCount"]))}
        if name not in names:
            raise missing("TASK", name, parent.location, parent.pid)
        return task(found, names[name])
