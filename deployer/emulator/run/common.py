"""What every Cloud Run backend shares: store kinds, the parent of a resource, stored records
(etags, private bookkeeping), conditions, and the operations Run answers for its changes.

No HTTP here: backends take and return plain records and raise ApiError.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import random
import re
import string
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .. import policies
from ..errors import AlreadyExists, ApiError, InvalidArgument, NotFound
from ..formats import rfc3339
from ..operations import completer
from ..projects import check_location, resolve
from ..serviceusage import require_enabled

if TYPE_CHECKING:
    from ..context import Emulator

SERVICE_KIND = "run.service"
REVISION_KIND = "run.revision"
JOB_KIND = "run.job"
EXECUTION_KIND = "run.execution"
WORKER_POOL_KIND = "run.workerpool"
TYPE = "type.googleapis.com/google.cloud.run.v2."
API = "run.googleapis.com"
CREATOR = "emulator@djdeploy.invalid"

_ID_RE = re.compile(r"^[a-z](?:[-a-z0-9]{0,47}[a-z0-9])?$")
_ID_RE_MSG = (
    "must use only lowercase alphanumeric characters and dashes, cannot begin or end with a "
    "dash, and cannot be longer than 49 characters"
)

#: fields an Any-packed resource must leave out (unknown to the installed client's protos)
_NOT_IN_ANY: dict[str, frozenset[str]] = {"Execution": frozenset({"template"})}


@dataclass(frozen=True)
class Parent:
    """``projects/<id>/locations/<l>``, resolved: the project id and number, the location."""

    name: str
    pid: str
    number: str
    location: str


def parent(emu: Emulator, project: str, location: str) -> Parent:
    """Checks the location and that the Run API is enabled for the project."""
    check_location(location)
    pid, number = resolve(emu, project)
    require_enabled(emu, pid, API)
    return Parent(f"projects/{pid}/locations/{location}", pid, number, location)


@dataclass(frozen=True)
class Change:
    """What a mutating call answers: the operation it started, or (``validateOnly``) no
    operation and the resource as it would be; nothing of the latter was stored."""

    kind: str  # "Service", "Job", "Revision", "Execution", "WorkerPool"
    resource: dict[str, Any]
    op: dict[str, Any] | None
    kept: bool = False  # a delete whose operation will fail (outcome "delete"): it stays


def now(emu: Emulator) -> str:
    return rfc3339(emu.clock())


def rand(n: int, alphabet: str = string.ascii_lowercase) -> str:
    return "".join(random.choice(alphabet) for _ in range(n))


def check_id(kind: str, rid: str | None) -> str:
    if not rid:
        raise InvalidArgument(f"{kind}_id is required.")
    if not _ID_RE.match(rid):
        raise InvalidArgument(f"Invalid {kind} id '{rid}': {kind} id {_ID_RE_MSG}.")
    return rid


def missing(kind: str, rid: str, location: str, project: str) -> ApiError:
    return NotFound(
        f"Resource '{rid}' of kind '{kind}' in region '{location}' in project '{project}' "
        "does not exist."
    )


def exists(rid: str) -> ApiError:
    return AlreadyExists(f"Resource '{rid}' already exists.")


def failed_precondition(message: str) -> ApiError:
    return ApiError(400, message, status="FAILED_PRECONDITION")


def check_etag(resource: dict[str, Any], etag: str | None, what: str) -> None:
    """A stale ``etag`` sent with a change is 409 ABORTED."""
    if etag and etag != resource.get("etag"):
        raise ApiError(
            409, f"Etag mismatch: the {what} was modified; read it and retry.", status="ABORTED"
        )


def public(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource as answered: private bookkeeping (keys starting with "_") removed."""
    return {k: v for k, v in resource.items() if not k.startswith("_")}


def condition(ctype: str, state: str, at: str, **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"type": ctype, "state": state, "lastTransitionTime": at}
    c.update({k: v for k, v in extra.items() if v})
    return c


def etag(resource: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(public(resource), sort_keys=True).encode()).digest()[:12]
    return '"' + base64.b64encode(digest).decode() + '"'


def stamp(resource: dict[str, Any]) -> dict[str, Any]:
    """Give ``resource`` the etag of its current content."""
    resource.pop("etag", None)
    resource["etag"] = etag(resource)
    return resource


def save(emu: Emulator, kind: str, resource: dict[str, Any]) -> dict[str, Any]:
    emu.store.put(kind, resource["name"], stamp(resource))
    return resource


def must(emu: Emulator, kind: str, name: str, what: str) -> dict[str, Any]:
    """The stored resource ``name`` of store kind ``kind``, or Run's 404 for a ``what``
    ("SERVICE", "JOB", "EXECUTION", "REVISION")."""
    found = emu.store.get(kind, name)
    if found is None:
        _, pid, _, loc = name.split("/")[:4]
        raise missing(what, name.rsplit("/", 1)[-1], loc, pid)
    return found


def new_resource(emu: Emulator, name: str) -> dict[str, Any]:
    """What Run records for a resource it creates, before the spec."""
    return {"name": name, "uid": str(uuid.uuid4()), "createTime": now(emu), "creator": CREATOR}


def set_spec(resource: dict[str, Any], spec: dict[str, Any], fields: tuple[str, ...]) -> None:
    """The ``fields`` a create/update sets, from ``spec`` (those it leaves out are unset)."""
    for key in fields:
        if key in spec:
            resource[key] = spec[key]
        else:
            resource.pop(key, None)


def next_generation(resource: dict[str, Any], at: str) -> int:
    """A change to ``resource``: its new generation (returned), update time and modifier."""
    generation = int(resource.get("generation", "0")) + 1
    resource["generation"] = str(generation)
    resource["updateTime"] = at
    resource["lastModifier"] = CREATOR
    return generation


def without_revision(template: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (template or {}).items() if k != "revision"}


def new_revision_id(
    resource: dict[str, Any], template: dict[str, Any], generation: int
) -> str | None:
    """A deploy of ``template`` onto ``resource`` (a service, a worker pool): the id of the
    revision it creates (the template's ``revision``, else ``<id>-0000N-xyz``), or None when
    the template is unchanged (but for its revision name)."""
    old = resource.get("template")
    resource["template"] = template
    if old is not None and without_revision(template) == without_revision(old):
        return None
    rid = resource["name"].rsplit("/", 1)[-1]
    return str(template.get("revision") or f"{rid}-{generation:05d}-{rand(3)}")


def settle_deploy(
    emu: Emulator,
    resource: dict[str, Any],
    op: dict[str, Any],
    *,
    problem: str | None,
    revision: str | None,
    types: tuple[str, ...],
) -> bool:
    """The end of a deploy's operation: when no later deploy started (whether returned), the
    resource is Ready with ``revision`` its latest ready one, or Failed with ``problem`` (the
    previous one kept); ``types``: the conditions beside Ready."""
    if int(resource["generation"]) != op["args"]["generation"]:
        return False
    at = now(emu)
    resource["observedGeneration"] = resource["generation"]
    resource["reconciling"] = False
    if problem is not None:
        resource["terminalCondition"] = condition(
            "Ready", "CONDITION_FAILED", at, message=problem, reason="REVISION_FAILED"
        )
        resource["conditions"] = [
            condition(t, "CONDITION_FAILED", at, message=problem) for t in types
        ]
    else:
        resource["latestReadyRevision"] = revision
        resource["terminalCondition"] = condition("Ready", "CONDITION_SUCCEEDED", at)
        resource["conditions"] = [condition(t, "CONDITION_SUCCEEDED", at) for t in types]
    return True


def deploy_result(
    op: dict[str, Any], kind: str, resource: dict[str, Any], problem: str | None
) -> dict[str, Any] | None:
    """What a deploy's completer answers: the resource, or the operation failed with
    ``problem``."""
    op["metadata"]["resource"] = public(resource)
    if problem is not None:
        fail_op(op, "FAILED_PRECONDITION", problem)
        return None
    return any_packed(kind, resource)


def any_packed(kind: str, resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` as the ``google.protobuf.Any`` an operation carries."""
    drop = _NOT_IN_ANY.get(kind, frozenset())
    body = {k: v for k, v in public(resource).items() if k not in drop}
    return {"@type": TYPE + kind, **body}


def start_op(
    emu: Emulator,
    parent: Parent,
    *,
    completer_name: str,
    duration_kind: str,
    kind: str,
    resource: dict[str, Any],
    args: dict[str, Any],
) -> Change:
    op = emu.ops.start(
        completer=completer_name,
        duration_kind=duration_kind,
        target=resource["name"],
        args={"parent": parent.name, "kind": kind, **args},
        metadata={"resource": public(resource)},
    )
    return Change(kind, resource, op)


def fail_op(op: dict[str, Any], status: str, message: str) -> None:
    """Mark the operation failed from inside a completer while keeping the completer's effects
    (raising ApiError would roll them back)."""
    op["error"] = {"code": 400, "message": message, "status": status}


def snapshot_op(
    emu: Emulator, parent: Parent, kind: str, resource: dict[str, Any], duration_kind: str
) -> Change:
    """An operation whose response is ``resource`` as it is now (delete, cancel)."""
    return start_op(
        emu,
        parent,
        completer_name="run.snapshot",
        duration_kind=duration_kind,
        kind=kind,
        resource=resource,
        args={},
    )


@completer("run.delete.failed")
def _fail_delete(emu: Emulator, op: dict[str, Any]) -> None:
    """The end of a delete an outcome rule fails: the resource is back as it was."""
    resource = emu.store.get(op["args"]["store_kind"], op["target"])
    if resource is not None:
        resource.pop("deleteTime", None)
        resource["reconciling"] = False
        save(emu, op["args"]["store_kind"], resource)
    fail_op(op, "FAILED_PRECONDITION", op["args"]["message"])


@completer("run.snapshot")
def _finish_snapshot(emu: Emulator, op: dict[str, Any]) -> dict[str, Any]:
    return any_packed(op["args"]["kind"], op["metadata"]["resource"])


def delete(
    emu: Emulator,
    parent: Parent,
    kind: str,
    resource: dict[str, Any],
    *,
    what: str,
    children: tuple[str, ...] = (),
    duration_kind: str,
    validate_only: bool,
) -> Change:
    """Delete ``resource`` (store kind ``kind``) at once, with its children (store kinds
    ``children``, under its name) and its IAM policy; the operation answers its last state.
    ``validate_only``: nothing is deleted, the answer is the same."""
    resource["deleteTime"] = now(emu)
    if validate_only:
        return Change(what, resource, None)
    store = emu.store
    store.delete(kind, resource["name"])
    for child in children:
        for key, _ in store.list(child, resource["name"] + "/"):
            store.delete(child, key)
    policies.delete_policy(emu, resource["name"])
    return snapshot_op(emu, parent, what, resource, duration_kind)


class Collection:
    """A top-level Run collection (services, jobs): get, list, create, update (``allowMissing``
    creates), delete with its children. A subclass says how a spec applies (``apply``)."""

    kind: ClassVar[str]  # store kind: "run.service"
    collection: ClassVar[str]  # in names: "services"
    what: ClassVar[str]  # in Run's 404: "SERVICE"
    type_name: ClassVar[str]  # the message type: "Service"
    children: ClassVar[tuple[str, ...]]  # store kinds deleted with it
    delete_duration: ClassVar[str]  # latency kind of the delete operation

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def _key(self, parent: Parent, rid: str) -> str:
        return f"{parent.name}/{self.collection}/{rid}"

    def get(self, parent: Parent, rid: str) -> dict[str, Any]:
        return must(self.emu, self.kind, self._key(parent, rid), self.what)

    def list(self, parent: Parent) -> list[dict[str, Any]]:
        return [v for _, v in self.emu.store.list(self.kind, f"{parent.name}/{self.collection}/")]

    def create(
        self, parent: Parent, rid: str, spec: dict[str, Any], *, validate_only: bool
    ) -> Change:
        with self.emu.store.transaction():
            if self.emu.store.get(self.kind, self._key(parent, rid)) is not None:
                raise exists(rid)
            resource = new_resource(self.emu, self._key(parent, rid))
            return self.apply(parent, resource, spec, validate_only=validate_only)

    def update(
        self,
        parent: Parent,
        rid: str,
        spec: dict[str, Any],
        *,
        allow_missing: bool,
        validate_only: bool,
    ) -> Change:
        with self.emu.store.transaction():
            resource = self.emu.store.get(self.kind, self._key(parent, rid))
            if resource is None:
                if not allow_missing:
                    raise missing(self.what, rid, parent.location, parent.pid)
                resource = new_resource(self.emu, self._key(parent, rid))
            else:
                check_etag(resource, spec.get("etag"), f"{self.what.lower()} '{rid}'")
            return self.apply(parent, resource, spec, validate_only=validate_only)

    def delete(self, parent: Parent, rid: str, *, etag: str | None, validate_only: bool) -> Change:
        with self.emu.store.transaction():
            resource = self.get(parent, rid)
            check_etag(resource, etag, f"{self.what.lower()} '{rid}'")
            self.deleting(resource)
            failure = None if validate_only else self.emu.outcomes.take("delete", resource["name"])
            if failure is not None:
                return self._failing_delete(parent, resource, failure)
            return delete(
                self.emu,
                parent,
                self.kind,
                resource,
                what=self.type_name,
                children=self.children,
                duration_kind=self.delete_duration,
                validate_only=validate_only,
            )

    def _failing_delete(self, parent: Parent, resource: dict[str, Any], message: str) -> Change:
        """A delete an outcome rule fails: the resource shows it being deleted until its
        operation ends in error with ``message``, and then stays as it was."""
        resource["deleteTime"] = now(self.emu)
        save(self.emu, self.kind, resource)
        change = start_op(
            self.emu,
            parent,
            completer_name="run.delete.failed",
            duration_kind=self.delete_duration,
            kind=self.type_name,
            resource=resource,
            args={"store_kind": self.kind, "message": message},
        )
        return dataclasses.replace(change, kept=True)

    def apply(
        self, parent: Parent, resource: dict[str, Any], spec: dict[str, Any], *, validate_only: bool
    ) -> Change:
        """Apply a create/update's ``spec`` to ``resource`` and start its operation;
        ``validate_only``: every check, nothing stored."""
        raise NotImplementedError

    def deleting(self, resource: dict[str, Any]) -> None:
        """How the resource answers its delete (in place)."""
