"""Cloud Run Admin v2 over HTTP: each handler parses the request, calls a backend and renders
its answer (resources without private bookkeeping, operations in google.longrunning shape)."""

from __future__ import annotations

from typing import Any

from .. import policies
from ..errors import InvalidArgument
from ..operations import longrunning_json
from ..pagination import Paging, paginate
from ..routing import Request, Router
from . import schema
from .common import Change, Collection, any_packed, check_id, parent, public
from .domainmappings import API_VERSION, DomainMappings
from .executions import Executions
from .jobs import Jobs
from .ops import Operations
from .revisions import SERVICES, WORKER_POOLS, Owner, Revisions
from .services import Services
from .tasks import Tasks
from .workerpools import WorkerPools

router = Router()

LOC = "/v2/projects/{project}/locations/{location}"
JOB = LOC + "/jobs/{job}"
EXECUTION = JOB + "/executions/{execution}"

_PAGING = Paging(default_size=100, max_size=1000)


# -- parsing and rendering -----------------------------------------------------------------------


def _flag(req: Request, name: str) -> bool:
    """A boolean query parameter (GAPIC REST sends "True", others "true")."""
    return (req.arg(name) or "").lower() == "true"


def _body(req: Request, schema_name: str, where: str) -> dict[str, Any]:
    return schema.body(req.json(), schema_name, where)


def _page(req: Request, items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return paginate(req, [public(i) for i in items], _PAGING, key=key)


def _op_json(op: dict[str, Any]) -> dict[str, Any]:
    return longrunning_json(
        op,
        f"{op['args']['parent']}/operations/{op['id']}",
        any_packed(op["args"]["kind"], op["metadata"]["resource"]),
    )


def _change_json(change: Change) -> dict[str, Any]:
    """The operation a change started; for ``validateOnly``, an operation already done with the
    would-be resource and no name (nothing was stored to poll), as AIP-151 describes."""
    if change.op is not None:
        return _op_json(change.op)
    packed = any_packed(change.kind, change.resource)
    return {"metadata": packed, "done": True, "response": packed}


# -- services, jobs and worker pools ------------------------------------------------------------


def _serve_collection(
    backend: type[Collection], collection: str, var: str, schema_name: str
) -> None:
    """Routes for a top-level collection: create / get / list / update / delete, and IAM."""
    base = f"{LOC}/{collection}"
    item = f"{base}/{{{var}}}"

    def create(req: Request, project: str, location: str) -> dict[str, Any]:
        at = parent(req.emu, project, location)
        rid = check_id(var, req.arg(f"{var}Id"))
        spec = _body(req, schema_name, var)
        change = backend(req.emu).create(at, rid, spec, validate_only=_flag(req, "validateOnly"))
        return _change_json(change)

    def get(req: Request, project: str, location: str, **ids: str) -> dict[str, Any]:
        return public(backend(req.emu).get(parent(req.emu, project, location), ids[var]))

    def list_(req: Request, project: str, location: str) -> dict[str, Any]:
        return _page(req, backend(req.emu).list(parent(req.emu, project, location)), collection)

    def update(req: Request, project: str, location: str, **ids: str) -> dict[str, Any]:
        at = parent(req.emu, project, location)
        spec = _body(req, schema_name, var)
        change = backend(req.emu).update(
            at,
            ids[var],
            spec,
            allow_missing=_flag(req, "allowMissing"),
            validate_only=_flag(req, "validateOnly"),
        )
        return _change_json(change)

    def delete(req: Request, project: str, location: str, **ids: str) -> dict[str, Any]:
        change = backend(req.emu).delete(
            parent(req.emu, project, location),
            ids[var],
            etag=req.arg("etag"),
            validate_only=_flag(req, "validateOnly"),
        )
        return _change_json(change)

    def iam_key(req: Request, project: str, location: str, ids: dict[str, str]) -> str:
        """The policy key: the resource's name (404 when it does not exist)."""
        return str(backend(req.emu).get(parent(req.emu, project, location), ids[var])["name"])

    def get_policy(req: Request, project: str, location: str, **ids: str) -> dict[str, Any]:
        version = req.arg("options.requestedPolicyVersion", "0")
        if version not in ("0", "1", "3"):
            raise InvalidArgument(f"Invalid requested policy version {version}.")
        key = iam_key(req, project, location, ids)
        return policies.render(policies.get_policy(req.emu, key))

    def set_policy(req: Request, project: str, location: str, **ids: str) -> dict[str, Any]:
        policy = req.json().get("policy")
        if not isinstance(policy, dict):
            raise InvalidArgument("Request contains an invalid argument: policy is required.")
        key = iam_key(req, project, location, ids)
        return policies.render(policies.set_policy(req.emu, key, policy))

    def test_permissions(req: Request, project: str, location: str, **ids: str) -> dict[str, Any]:
        iam_key(req, project, location, ids)
        perms = req.json().get("permissions") or []
        return {"permissions": perms} if perms else {}

    router.route("POST", base)(create)
    router.route("GET", item)(get)
    router.route("GET", base)(list_)
    router.route("PATCH", item)(update)
    router.route("DELETE", item)(delete)
    router.route("GET", item + ":getIamPolicy")(get_policy)
    router.route("POST", item + ":setIamPolicy")(set_policy)
    router.route("POST", item + ":testIamPermissions")(test_permissions)


_serve_collection(Services, "services", "service", "GoogleCloudRunV2Service")
_serve_collection(Jobs, "jobs", "job", "GoogleCloudRunV2Job")
_serve_collection(WorkerPools, "workerPools", "workerPool", "GoogleCloudRunV2WorkerPool")


# -- revisions -----------------------------------------------------------------------------------


def _serve_revisions(owner: Owner, var: str) -> None:
    """Get, list and delete of the revisions of a service or a worker pool (``var``: its id's
    path variable)."""
    base = f"{LOC}/{owner.collection}/{{{var}}}/revisions"

    def get(req: Request, project: str, location: str, revision: str, **ids: str) -> Any:
        at = parent(req.emu, project, location)
        return public(Revisions(req.emu, owner).get(at, ids[var], revision))

    def list_(req: Request, project: str, location: str, **ids: str) -> dict[str, Any]:
        at = parent(req.emu, project, location)
        return _page(req, Revisions(req.emu, owner).list(at, ids[var]), "revisions")

    def delete(req: Request, project: str, location: str, revision: str, **ids: str) -> Any:
        change = Revisions(req.emu, owner).delete(
            parent(req.emu, project, location),
            ids[var],
            revision,
            etag=req.arg("etag"),
            validate_only=_flag(req, "validateOnly"),
        )
        return _change_json(change)

    router.route("GET", base + "/{revision}")(get)
    router.route("GET", base)(list_)
    router.route("DELETE", base + "/{revision}")(delete)


_serve_revisions(SERVICES, "service")
_serve_revisions(WORKER_POOLS, "workerPool")


# -- executions and tasks ------------------------------------------------------------------------


@router.route("POST", JOB + ":run")
def run_job(req: Request, project: str, location: str, job: str) -> dict[str, Any]:
    at = parent(req.emu, project, location)
    body = _body(req, "GoogleCloudRunV2RunJobRequest", "")
    change = Executions(req.emu).run(
        at,
        job,
        overrides=body.get("overrides") or {},
        etag=body.get("etag"),
        validate_only=bool(body.get("validateOnly")),
    )
    return _change_json(change)


@router.route("GET", EXECUTION)
def get_execution(
    req: Request, project: str, location: str, job: str, execution: str
) -> dict[str, Any]:
    at = parent(req.emu, project, location)
    return public(Executions(req.emu).get(at, job, execution))


@router.route("GET", JOB + "/executions")
def list_executions(req: Request, project: str, location: str, job: str) -> dict[str, Any]:
    at = parent(req.emu, project, location)
    return _page(req, Executions(req.emu).list(at, job), "executions")


@router.route("DELETE", EXECUTION)
def delete_execution(
    req: Request, project: str, location: str, job: str, execution: str
) -> dict[str, Any]:
    change = Executions(req.emu).delete(
        parent(req.emu, project, location),
        job,
        execution,
        etag=req.arg("etag"),
        validate_only=_flag(req, "validateOnly"),
    )
    return _change_json(change)


@router.route("POST", EXECUTION + ":cancel")
def cancel_execution(
    req: Request, project: str, location: str, job: str, execution: str
) -> dict[str, Any]:
    at = parent(req.emu, project, location)
    body = _body(req, "GoogleCloudRunV2CancelExecutionRequest", "")
    change = Executions(req.emu).cancel(
        at,
        job,
        execution,
        etag=body.get("etag"),
        validate_only=bool(body.get("validateOnly")),
    )
    return _change_json(change)


@router.route("GET", EXECUTION + "/tasks")
def list_tasks(
    req: Request, project: str, location: str, job: str, execution: str
) -> dict[str, Any]:
    at = parent(req.emu, project, location)
    return paginate(req, Tasks(req.emu).list(at, job, execution), _PAGING, key="tasks")


@router.route("GET", EXECUTION + "/tasks/{task}")
def get_task(
    req: Request, project: str, location: str, job: str, execution: str, task: str
) -> dict[str, Any]:
    at = parent(req.emu, project, location)
    return Tasks(req.emu).get(at, job, execution, task)


# -- operations ----------------------------------------------------------------------------------


@router.route("GET", LOC + "/operations/{operation}")
def get_operation(req: Request, project: str, location: str, operation: str) -> dict[str, Any]:
    at = parent(req.emu, project, location)
    return _op_json(Operations(req.emu).get(at, operation))


@router.route("DELETE", LOC + "/operations/{operation}")
def delete_operation(req: Request, project: str, location: str, operation: str) -> dict[str, Any]:
    Operations(req.emu).delete(parent(req.emu, project, location), operation)
    return {}


@router.route("GET", LOC + "/operations")
def list_operations(req: Request, project: str, location: str) -> dict[str, Any]:
    ops = Operations(req.emu).list(parent(req.emu, project, location))
    return paginate(req, [_op_json(o) for o in ops], _PAGING, key="operations")


# -- domain mappings (Admin API v1) --------------------------------------------------------------

DOMAINS = "/apis/domains.cloudrun.com/v1/namespaces/{namespace}/domainmappings"


@router.route("POST", DOMAINS)
def create_domain_mapping(req: Request, namespace: str) -> dict[str, Any]:
    return DomainMappings(req.emu).create(namespace, req.json())


@router.route("GET", DOMAINS)
def list_domain_mappings(req: Request, namespace: str) -> dict[str, Any]:
    items = DomainMappings(req.emu).list(namespace)
    return {"apiVersion": API_VERSION, "kind": "DomainMappingList", "metadata": {}, "items": items}


@router.route("GET", DOMAINS + "/{domain}")
def get_domain_mapping(req: Request, namespace: str, domain: str) -> dict[str, Any]:
    return DomainMappings(req.emu).get(namespace, domain)


@router.route("DELETE", DOMAINS + "/{domain}")
def delete_domain_mapping(req: Request, namespace: str, domain: str) -> dict[str, Any]:
    return DomainMappings(req.emu).delete(namespace, domain)
