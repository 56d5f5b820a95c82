"""What the Cloud Run steps that deploy a revision template share (the service, the [worker]
pool): how a step reaches its resource, the rollout state its diff reads, create-or-adopt on
apply, a redeploy of a failed revision, and delete.

A deploy rolls out: WAIT while the resource reconciles (or its generation is not observed yet);
UPDATE when the spec differs, or when the newest revision failed (``Change.failure``: the
previous one keeps running, and apply rolls out a new revision of the same spec by bumping
REDEPLOY_ANNOTATION on the template).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from deployer.errors import Conflict
from deployer.steps import container_env as ce
from deployer.steps.base import Action, Change, Operation, Transient

#: set on the template to roll out a new revision of an unchanged spec (after a failed one)
REDEPLOY_ANNOTATION = "djdeploy.dev/redeploy"


@dataclass(frozen=True)
class Resource:
    """One Cloud Run resource a step deploys: its ``kind`` and short ``name`` (as messages say
    them: "service demo", "worker pool demo-worker") and the client's calls for it."""

    kind: str
    name: str
    get: Callable[[str], dict[str, Any] | None]
    create: Callable[[str, dict[str, Any]], object]
    update: Callable[[dict[str, Any]], object]
    remove: Callable[[str], object]

    @property
    def what(self) -> str:
        return f"{self.kind} {self.name}"


def rollout_change(
    step: Operation,
    what: str,
    current: Mapping[str, Any],
    desired: dict[str, Any],
    *,
    keeps: str,
    info: Mapping[str, str],
    explain: Callable[[str], str] | None = None,
) -> Change | None:
    """WAIT while ``current`` (``what``: "service demo") rolls out, UPDATE when it differs
    from ``desired`` (its name is left out: short here, full on the server) or its newest
    revision failed (the last ready one ``keeps`` serving / running; the failure is Cloud
    Run's message, or what ``explain`` makes of it); None when the spec matches and nothing
    failed."""
    if current.get("reconciling") or current.get("generation") != current.get("observedGeneration"):
        return step.wait(
            f"deploying revision {ce.short(current.get('latestCreatedRevision'))}", info=info
        )
    desired.pop("name")  # short here, full on the server
    fields = ce.spec_changes(desired, current)
    if fields:
        return step.update(f"{what} differs", fields, info=info)
    cond = current.get("terminalCondition") or {}
    if cond.get("state") == "CONDITION_FAILED":
        message = cond.get("message") or "the revision failed"
        failure = ce.run_failure(explain(message) if explain else message)
        # a fresh grant not yet seen by Cloud Run: expected right after one, and deployed again
        # by this run, not a failure to act on
        why = GRANT_NOT_YET if isinstance(failure, Transient) else ""
        return step.update(
            f"revision {ce.short(current.get('latestCreatedRevision'))} failed{why}; "
            f"{ce.short(current.get('latestReadyRevision')) or 'no revision'} keeps {keeps}",
            failure=failure,
            info=info,
        )
    return None


GRANT_NOT_YET = (
    " on a secret whose fresh access grant has not reached Cloud Run yet (usual right after the "
    "grant): deployed again shortly"
)


def create_or_current(
    res: Resource, change: Change, body: dict[str, Any], *, owns: Callable[[Any], bool]
) -> dict[str, Any] | None:
    """Create the resource from ``body`` when it is missing (on a CREATE whose create meets a
    Conflict: adopt it when ``owns`` its labels, an earlier run created it; else NotOurs);
    None once created, else the current resource to update."""
    if change.action is Action.CREATE:
        try:
            res.create(res.name, body)
            return None
        except Conflict:
            current = res.get(res.name)
            if current is None or not owns(current.get("labels")):
                raise ce.not_ours(res.kind, res.name) from None
            # ours (an earlier run created it): bring it to the spec
    current = res.get(res.name)
    if current is None:
        res.create(res.name, body)
        return None
    return current


def deploy(res: Resource, change: Change, body: dict[str, Any], current: Mapping[str, Any]) -> None:
    """Update the resource to ``body``; after a failed revision (the spec unchanged), roll out
    a new revision of it."""
    if change.failure:
        generation = str(int(current.get("generation") or 0) + 1)
        body["template"]["annotations"] = {REDEPLOY_ANNOTATION: generation}
    res.update(body)


def delete(step: Operation, res: Resource, *, owns: Callable[[Any], bool]) -> Change:
    """Delete the resource when it is ours (noop when it is gone or not ours)."""
    current = res.get(res.name)
    if current is None:
        return step.noop(f"{res.what} is gone")
    if not owns(current.get("labels")):
        return step.noop(f"kept: {res.what} is not managed by djdeploy")
    if current.get("deleteTime") and current.get("reconciling"):
        return step.deleted("deletion in progress")
    res.remove(res.name)
    return step.deleted(f"deleted {res.what}")
