"""Cloud Run Admin v2: services, revisions, jobs, executions, operations, IAM.

    POST   /v2/projects/{p}/locations/{l}/services?serviceId=       -> Operation (Service)
    GET    /v2/projects/{p}/locations/{l}/services[/{s}]
    PATCH  /v2/projects/{p}/locations/{l}/services/{s}[?allowMissing=] -> Operation (Service)
    DELETE /v2/projects/{p}/locations/{l}/services/{s}              -> Operation (Service)
    GET    /v2/projects/{p}/locations/{l}/services/{s}/revisions[/{r}]
    GET|POST .../services/{s}:getIamPolicy | :setIamPolicy | :testIamPermissions (jobs too)
    POST   /v2/projects/{p}/locations/{l}/jobs?jobId=               -> Operation (Job)
    GET    /v2/projects/{p}/locations/{l}/jobs[/{j}]
    PATCH  /v2/projects/{p}/locations/{l}/jobs/{j}                  -> Operation (Job)
    DELETE /v2/projects/{p}/locations/{l}/jobs/{j}                  -> Operation (Job)
    POST   /v2/projects/{p}/locations/{l}/jobs/{j}:run              -> Operation (Execution)
    GET    /v2/projects/{p}/locations/{l}/jobs/{j}/executions[/{e}]
    DELETE /v2/projects/{p}/locations/{l}/jobs/{j}/executions/{e}   -> Operation (Execution)
    POST   /v2/projects/{p}/locations/{l}/jobs/{j}/executions/{e}:cancel -> Operation (Execution)
    GET    /v2/projects/{p}/locations/{l}/operations[/{id}]; DELETE .../operations/{id}

Behaviour copied from Google:
- Request bodies are checked against the discovery document (unknown field -> 400 "Invalid JSON
  payload received. Unknown name ..."); output-only fields are ignored; enum numbers (GAPIC REST
  sends ``enum-encoding=int``) are stored and answered as names. The server fills its defaults
  (ports ``http1``/8080, resources with ``cpuIdle``, a TCP startup probe, timeout 300s, the
  Compute default service account, concurrency 80, maxInstanceCount 100, traffic 100% latest;
  jobs: taskCount 1, maxRetries 3, timeout 600s), so a client comparing its spec must compare
  only the fields it sets.
- A service reconciles before it is Ready: each create/update bumps ``generation``; a template
  change creates revision ``<service>-0000N-xyz``; ``reconciling`` is true and
  ``terminalCondition`` CONDITION_RECONCILING until the ``run.service.deploy`` duration passes.
  Then the revision is Ready, ``latestReadyRevision == latestCreatedRevision``,
  ``observedGeneration == generation``, 100% of traffic on the latest revision.
- A revision FAILS (terminalCondition CONDITION_FAILED, the previous ready revision keeps
  serving, the operation ends with an error) when an outcome of kind ``revision`` matches the
  service name, an Artifact Registry image does not exist (store kind ``artifactregistry.tag``,
  key = the full image reference with its tag), a secret env var names a secret/version that
  does not exist, or the revision's service account lacks roles/secretmanager.secretAccessor on
  the secret (or its project), or got it less than ``iam.secret_grant.propagation`` ago.
- ``jobs/{j}:run`` creates an execution at once (runningCount = taskCount); its operation
  completes after ``run.execution`` with the Execution, succeeded, or failed when an outcome of
  kind ``execution`` matches the job name (failedCount = taskCount, a Completed condition
  CONDITION_FAILED) or a secret/image check fails. Executions carry the job template's labels.
- ``uri`` is ``https://<service>-<10 chars>-<region code>.a.run.app``; ``urls`` lists the
  deterministic ``https://<service>-<project number>.<region>.run.app`` first, then ``uri``.
- Operation ``metadata``/``response`` are Any messages that the client parses strictly: they
  carry only the fields the installed client knows (an Execution in an operation leaves out
  ``template``, which google-cloud-run 0.16 does not know; GET answers include it).
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import importlib.util
import json
import random
import string
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import policies
from .errors import ApiError
from .operations import completer, longrunning_json
from .pagination import Paging, paginate
from .projects import check_location, resolve
from .routing import Request, Router, rfc3339
from .serviceusage import require_enabled

if TYPE_CHECKING:
    from .context import Emulator

router = Router()

SERVICE_KIND = "run.service"
REVISION_KIND = "run.revision"
JOB_KIND = "run.job"
EXECUTION_KIND = "run.execution"
TYPE = "type.googleapis.com/google.cloud.run.v2."
API = "run.googleapis.com"
CREATOR = "emulator@djdeploy.invalid"

SECRET_ACCESSOR = "roles/secretmanager.secretAccessor"
#: roles that include secretmanager.versions.access
SECRET_READ_ROLES = (SECRET_ACCESSOR, "roles/secretmanager.admin", "roles/owner", "roles/editor")

CONTAINER_FAILED = (
    "The user-provided container failed to start and listen on the port defined provided by "
    "the PORT=8080 environment variable within the allocated timeout. This can happen when the "
    "container port is misconfigured or if the timeout is too short. The health check timeout "
    "can be extended. Logs for this revision might contain more information."
)

#: the short codes Cloud Run puts in *.a.run.app hosts (others: a stable 2-letter hash)
REGION_CODES: dict[str, str] = {
    "us-central1": "uc",
    "us-east1": "ue",
    "us-east4": "uk",
    "us-west1": "uw",
    "europe-west1": "ew",
    "europe-west2": "nw",
    "europe-west3": "ey",
    "europe-west4": "ez",
    "europe-north1": "lz",
    "asia-northeast1": "an",
    "asia-east1": "de",
    "asia-southeast1": "as",
    "australia-southeast1": "ts",
}

_ID_RE_MSG = (
    "must use only lowercase alphanumeric characters and dashes, cannot begin or end with a "
    "dash, and cannot be longer than 49 characters"
)


# -- the discovery document: request checking and enum names -------------------------------------


@functools.cache
def _doc() -> dict[str, Any]:
    spec = importlib.util.find_spec("googleapiclient")
    if spec is None or not spec.submodule_search_locations:
        return {"schemas": {}}
    base = Path(next(iter(spec.submodule_search_locations)))
    return json.loads((base / "discovery_cache" / "documents" / "run.v2.json").read_text())


def _clean(value: Any, schema: dict[str, Any], where: str) -> Any:
    """A request value checked against its schema: unknown fields refused (400), output-only
    fields dropped, enum numbers turned into names."""
    schemas = _doc()["schemas"]
    if "$ref" in schema:
        schema = schemas.get(schema["$ref"], {})
    typ = schema.get("type")
    if typ == "object" and isinstance(value, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        out: dict[str, Any] = {}
        for k, v in value.items():
            if props is not None and k in props:
                if props[k].get("readOnly"):
                    continue
                out[k] = _clean(v, props[k], f"{where}.{k}")
            elif addl is not None:
                out[k] = _clean(v, addl, f"{where}.{k}")
            elif props is None and not addl:
                out[k] = v
            else:
                raise ApiError(
                    400,
                    f"Invalid JSON payload received. Unknown name \"{k}\" at '{where}': "
                    "Cannot find field.",
                )
        return out
    if typ == "array" and isinstance(value, list):
        return [_clean(v, schema.get("items", {}), where) for v in value]
    if typ == "string" and "enum" in schema and isinstance(value, int):
        names = schema["enum"]
        if not 0 <= value < len(names):
            raise ApiError(400, f"Invalid value at '{where}': {value}")
        return names[value]
    return value


def _body(req: Request, schema: str, where: str) -> dict[str, Any]:
    return _clean(req.json(), {"$ref": schema}, where)  # type: ignore[no-any-return]


# -- helpers -------------------------------------------------------------------------------------


def _now(emu: Emulator) -> str:
    return rfc3339(emu.clock())


def _etag(resource: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(resource, sort_keys=True).encode()).digest()[:12]
    return '"' + base64.b64encode(digest).decode() + '"'


def _rand(n: int, alphabet: str = string.ascii_lowercase) -> str:
    return "".join(random.choice(alphabet) for _ in range(n))


def _parent(emu: Emulator, project: str, location: str) -> tuple[str, str, str]:
    """(parent "projects/<id>/locations/<l>", project id, project number); checks the location
    and that the Run API is enabled."""
    check_location(location)
    pid, number = resolve(emu, project)
    require_enabled(emu, pid, API)
    return f"projects/{pid}/locations/{location}", pid, number


def _check_id(kind: str, rid: str | None) -> str:
    import re

    if not rid:
        raise ApiError(400, f"{kind}_id is required.")
    if not re.match(r"^[a-z](?:[-a-z0-9]{0,47}[a-z0-9])?$", rid):
        raise ApiError(400, f"Invalid {kind} id '{rid}': {kind} id {_ID_RE_MSG}.")
    return rid


def _missing(kind: str, rid: str, location: str, project: str) -> ApiError:
    return ApiError(
        404,
        f"Resource '{rid}' of kind '{kind}' in region '{location}' in project '{project}' "
        "does not exist.",
    )


def _compute_sa(number: str) -> str:
    return f"{number}-compute@developer.gserviceaccount.com"


def _public(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource as answered: private bookkeeping (keys starting with "_") removed."""
    return {k: v for k, v in resource.items() if not k.startswith("_")}


def _condition(ctype: str, state: str, at: str, **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"type": ctype, "state": state, "lastTransitionTime": at}
    c.update({k: v for k, v in extra.items() if v})
    return c


def _container_defaults(c: dict[str, Any], *, service: bool) -> None:
    res = c.setdefault("resources", {})
    limits = res.setdefault("limits", {})
    limits.setdefault("cpu", "1000m")
    limits.setdefault("memory", "512Mi")
    if service:
        res.setdefault("cpuIdle", True)
        ports = c.setdefault("ports", [{"containerPort": 8080}])
        for p in ports:
            p.setdefault("name", "http1")
            p.setdefault("containerPort", 8080)
        port = ports[0]["containerPort"] if ports else 8080
        probe = c.setdefault(
            "startupProbe",
            {"timeoutSeconds": 240, "periodSeconds": 240, "failureThreshold": 1},
        )
        if not any(k in probe for k in ("httpGet", "tcpSocket", "grpc")):
            probe["tcpSocket"] = {"port": port}
        for p in (probe, c.get("livenessProbe") or {}):
            if "httpGet" in p:
                p["httpGet"].setdefault("path", "/")
                p["httpGet"].setdefault("port", port)


def _revision_template_defaults(t: dict[str, Any], number: str) -> dict[str, Any]:
    t = copy.deepcopy(t)
    containers = t.get("containers") or []
    if not containers:
        raise ApiError(400, "template.containers: at least one container must be specified.")
    for c in containers:
        if not c.get("image"):
            raise ApiError(400, "template.containers[0].image: Field is required.")
        _container_defaults(c, service=True)
    t.setdefault("timeout", "300s")
    t.setdefault("serviceAccount", _compute_sa(number))
    t.setdefault("maxInstanceRequestConcurrency", 80)
    t.setdefault("scaling", {}).setdefault("maxInstanceCount", 100)
    return t


def _task_template_defaults(t: dict[str, Any], number: str) -> dict[str, Any]:
    t = copy.deepcopy(t)
    containers = t.get("containers") or []
    if not containers:
        raise ApiError(400, "template.template.containers: at least one container is required.")
    for c in containers:
        if not c.get("image"):
            raise ApiError(400, "template.template.containers[0].image: Field is required.")
        _container_defaults(c, service=False)
    t.setdefault("maxRetries", 3)
    t.setdefault("timeout", "600s")
    t.setdefault("serviceAccount", _compute_sa(number))
    return t


def _check_service_account(emu: Emulator, template: dict[str, Any]) -> None:
    """A user-managed runtime service account must exist and be visible (400 as Google answers
    for an account that does not exist or was created less than ``iam.sa.propagation`` ago);
    Google's own accounts (Compute default, ...) are taken as existing."""
    email = template.get("serviceAccount") or ""
    if not email or not policies._user_managed(email):
        return
    sa = emu.store.get(policies.SA_KIND, email)
    if sa is None or float(sa.get("_visibleAt", 0.0)) > emu.clock():
        raise ApiError(400, f"Service account {email} does not exist.")


#: env names Cloud Run sets itself in a service's containers: a template may not set them
RESERVED_ENV = ("PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION")
#: a probe's defaults when the template leaves them out
_PROBE_DEFAULT_TIMEOUT, _PROBE_DEFAULT_PERIOD = 1, 10


def _check_template(template: dict[str, Any], *, service: bool) -> None:
    """The synchronous (400) checks of a revision / task template that matter to a deployment:
    Cloud Storage volumes need the second generation (services: jobs always run gen2), a
    probe's timeout may not exceed its period, reserved env names are refused (services)."""
    spec = "spec.template.spec" if service else "spec.template.spec.template.spec"
    if service and template.get("executionEnvironment") != "EXECUTION_ENVIRONMENT_GEN2":
        for vi, vol in enumerate(template.get("volumes") or []):
            if "gcs" in vol:
                raise ApiError(
                    400,
                    f"{spec}.volumes[{vi}].csi: Cloud Storage volumes are only supported in "
                    "the second generation execution environment. Set the execution "
                    "environment to gen2 (executionEnvironment EXECUTION_ENVIRONMENT_GEN2).",
                )
    for ci, c in enumerate(template.get("containers") or []):
        for field, proto in (
            ("startupProbe", "startup_probe"),
            ("livenessProbe", "liveness_probe"),
        ):
            probe = c.get(field)
            if not probe:
                continue
            timeout = int(probe.get("timeoutSeconds") or _PROBE_DEFAULT_TIMEOUT)
            period = int(probe.get("periodSeconds") or _PROBE_DEFAULT_PERIOD)
            if timeout > period:
                raise ApiError(
                    400,
                    f"{spec}.containers[{ci}].{proto}.timeout_seconds: must be less than or "
                    f"equal to period_seconds ({timeout} > {period}).",
                )
        if service:
            names = [e.get("name") for e in c.get("env") or []]
            reserved = [n for n in RESERVED_ENV if n in names]
            if reserved:
                raise ApiError(
                    400,
                    f"{spec}.containers[{ci}].env: The following reserved env names were "
                    f"provided: {', '.join(reserved)}. These values are automatically set by "
                    "the system.",
                )


def _uri(service: str, pid: str, location: str) -> str:
    h = hashlib.sha256(f"{pid}/{location}/{service}".encode()).hexdigest()
    alphabet = string.ascii_lowercase + string.digits
    tag = "".join(alphabet[int(h[i : i + 2], 16) % len(alphabet)] for i in range(0, 20, 2))
    code = REGION_CODES.get(location) or "".join(
        string.ascii_lowercase[int(h[20 + i : 22 + i], 16) % 26] for i in (0, 2)
    )
    return f"https://{service}-{tag}-{code}.a.run.app"


# -- the checks a revision or an execution must pass ---------------------------------------------


def _secret_ref(ref: dict[str, Any], pid: str) -> tuple[str, str, str]:
    """(project id, secret id, version) of a secretKeyRef."""
    secret = ref.get("secret", "")
    version = ref.get("version") or "latest"
    if secret.startswith("projects/"):
        parts = secret.split("/")
        project = parts[1]
        sid = parts[3] if len(parts) > 3 else ""
        return project, sid, version
    return pid, secret, version


def _secret_version(emu: Emulator, project: str, secret: str, version: str) -> str | None:
    """The version number a secret reference resolves to when that version exists and is
    ENABLED, else None (Secret Manager's store, through its module's helpers)."""
    from . import secretmanager

    found = secretmanager.find_version(emu, project, secret, version)
    if found is None or secretmanager.version_state(emu, project, secret, version) != "ENABLED":
        return None
    number = found.get("_number") or found.get("name", "").rsplit("/", 1)[-1]
    return str(number)


def _can_read_secret(emu: Emulator, project: str, secret: str, sa: str, at: float) -> bool:
    member = f"serviceAccount:{sa}"
    prop = emu.latency.duration("iam.secret_grant.propagation")
    for key in (f"projects/{project}/secrets/{secret}", f"projects/{project}"):
        for role in SECRET_READ_ROLES:
            # the grant must be in the current policy AND old enough: a record alone may be
            # left from a resource deleted and created again
            since = policies.granted_since(emu, key, role, member)
            if (
                since is not None
                and since + prop <= at
                and policies.has_binding(emu, key, role, member)
            ):
                return True
    return False


#: Google's public sample images (Artifact Registry hosted, not in any emulated project)
PUBLIC_IMAGE_PREFIXES = ("us-docker.pkg.dev/cloudrun/container/",)


def _image_problem(emu: Emulator, image: str) -> str | None:
    from . import artifactregistry

    host = image.split("/", 1)[0]
    if not host.endswith("-docker.pkg.dev") or image.startswith(PUBLIC_IMAGE_PREFIXES):
        return None  # only Artifact Registry images are checked
    if "@" in image:
        found = artifactregistry.digest_exists(emu, image)
    else:
        last = image.rsplit("/", 1)[-1]
        found = artifactregistry.image_exists(emu, image if ":" in last else image + ":latest")
    return None if found else f"Image '{image}' not found."


def _template_problem(
    emu: Emulator, pid: str, template: dict[str, Any], at: float, who: str
) -> str | None:
    """Why a revision / task with this template cannot start, or None."""
    sa = template.get("serviceAccount", "")
    for ci, c in enumerate(template.get("containers") or []):
        problem = _image_problem(emu, c.get("image", ""))
        if problem:
            return problem
        for ei, env in enumerate(c.get("env") or []):
            ref = (env.get("valueSource") or {}).get("secretKeyRef")
            if not ref:
                continue
            project, secret, version = _secret_ref(ref, pid)
            where = f"spec.template.spec.containers[{ci}].env[{ei}].value_from.secret_key_ref.name"
            try:  # projects/<number>/secrets/... names the same secret as projects/<id>/...
                project, number = resolve(emu, project)
            except ApiError:
                number = project
                resolved = None
            else:
                resolved = _secret_version(emu, project, secret, version)
            path = f"projects/{number}/secrets/{secret}/versions/{resolved or version}"
            if resolved is None:
                return f"{where}: Secret {path} was not found"
            if not _can_read_secret(emu, project, secret, sa, at):
                return (
                    f"{where}: Permission denied on secret: {path} for {who} service account "
                    f"{sa}. The service account used must be granted the 'Secret Manager Secret "
                    "Accessor' role (roles/secretmanager.secretAccessor) at the secret, project "
                    "or higher level."
                )
    return None


# -- operations ----------------------------------------------------------------------------------

#: fields an Any-packed resource must leave out (unknown to the installed client's protos)
_NOT_IN_ANY: dict[str, frozenset[str]] = {"Execution": frozenset({"template"})}


def _any(kind: str, resource: dict[str, Any]) -> dict[str, Any]:
    drop = _NOT_IN_ANY.get(kind, frozenset())
    body = {k: v for k, v in _public(resource).items() if k not in drop}
    return {"@type": TYPE + kind, **body}


def _start_op(
    emu: Emulator,
    parent: str,
    *,
    completer_name: str,
    duration_kind: str,
    kind: str,
    resource: dict[str, Any],
    args: dict[str, Any],
) -> dict[str, Any]:
    op = emu.ops.start(
        completer=completer_name,
        duration_kind=duration_kind,
        target=resource["name"],
        args={"parent": parent, "kind": kind, **args},
        metadata={"resource": _public(resource)},
    )
    return _op_json(op)


def _op_json(op: dict[str, Any]) -> dict[str, Any]:
    return longrunning_json(
        op,
        f"{op['args']['parent']}/operations/{op['id']}",
        _any(op["args"]["kind"], op["metadata"]["resource"]),
    )


def _fail_op(op: dict[str, Any], status: str, message: str) -> None:
    """Mark the operation failed from inside a completer while keeping the completer's effects
    (raising ApiError would roll them back)."""
    op["error"] = {"code": 400, "message": message, "status": status}


# -- services ------------------------------------------------------------------------------------


def _service_key(parent: str, service: str) -> str:
    return f"{parent}/services/{service}"


def _get_service(emu: Emulator, parent: str, service: str) -> dict[str, Any] | None:
    return emu.store.get(SERVICE_KIND, _service_key(parent, service))


def _must(emu: Emulator, kind: str, name: str, what: str) -> dict[str, Any]:
    """The stored resource ``name`` of store kind ``kind``, or Run's 404 for a ``what``
    ("SERVICE", "JOB", "EXECUTION")."""
    found = emu.store.get(kind, name)
    if found is None:
        _, pid, _, loc = name.split("/")[:4]
        raise _missing(what, name.rsplit("/", 1)[-1], loc, pid)
    return found


def _must_service(emu: Emulator, parent: str, service: str) -> dict[str, Any]:
    return _must(emu, SERVICE_KIND, _service_key(parent, service), "SERVICE")


def _new_resource(emu: Emulator, name: str) -> dict[str, Any]:
    """What Run records for a resource it creates, before the spec."""
    return {"name": name, "uid": str(uuid.uuid4()), "createTime": _now(emu), "creator": CREATOR}


def _save(emu: Emulator, kind: str, resource: dict[str, Any]) -> dict[str, Any]:
    resource.pop("etag", None)
    resource["etag"] = _etag(_public(resource))
    emu.store.put(kind, resource["name"], resource)
    return resource


def _delete(
    emu: Emulator,
    parent: str,
    kind: str,
    resource: dict[str, Any],
    *,
    children: str | None,
    op_kind: str,
    duration_kind: str,
) -> dict[str, Any]:
    """Delete ``resource`` (store kind ``kind``) at once, with its children (store kind
    ``children``, under its name) and its IAM policy; the operation answers its last state."""
    store = emu.store
    store.delete(kind, resource["name"])
    if children is not None:
        for key, _ in store.list(children, resource["name"] + "/"):
            store.delete(children, key)
        policies.delete_policy(emu, resource["name"])
    resource["deleteTime"] = _now(emu)
    return _snapshot_op(emu, parent, op_kind, resource, duration_kind)


def _snapshot_op(
    emu: Emulator, parent: str, kind: str, resource: dict[str, Any], duration_kind: str
) -> dict[str, Any]:
    """An operation whose response is ``resource`` as it is now (delete, cancel)."""
    return _start_op(
        emu,
        parent,
        completer_name="run.snapshot",
        duration_kind=duration_kind,
        kind=kind,
        resource=resource,
        args={},
    )


_SERVICE_SPEC = (
    "description",
    "labels",
    "annotations",
    "client",
    "clientVersion",
    "ingress",
    "launchStage",
    "binaryAuthorization",
    "template",
    "traffic",
    "scaling",
    "invokerIamDisabled",
    "defaultUriDisabled",
    "customAudiences",
    "iapEnabled",
)


def _deploy(
    emu: Emulator, parent: str, pid: str, number: str, svc: dict[str, Any], spec: dict[str, Any]
) -> dict[str, Any]:
    """Apply a create/update: bump the generation, create a revision when the template changed,
    start reconciling; returns the operation JSON."""
    now = _now(emu)
    location = parent.split("/")[3]
    template = _revision_template_defaults(spec.get("template") or {}, number)
    _check_template(template, service=True)
    _check_service_account(emu, template)
    for key in _SERVICE_SPEC:
        if key == "template":
            continue
        if key in spec:
            svc[key] = spec[key]
        else:
            svc.pop(key, None)
    svc.setdefault("ingress", "INGRESS_TRAFFIC_ALL")
    svc.setdefault("launchStage", "GA")
    if not svc.get("traffic"):
        svc["traffic"] = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]
    generation = int(svc.get("generation", "0")) + 1
    svc["generation"] = str(generation)
    svc["updateTime"] = now
    svc["lastModifier"] = CREATOR
    old_template = svc.get("template")
    svc["template"] = template
    sid = svc["name"].rsplit("/", 1)[-1]
    rev_template = {k: v for k, v in template.items() if k != "revision"}
    old_rev_template = {k: v for k, v in (old_template or {}).items() if k != "revision"}
    revision = svc.get("latestCreatedRevision", "")
    if old_template is None or rev_template != old_rev_template:
        revision = template.get("revision") or f"{sid}-{generation:05d}-{_rand(3)}"
        if emu.store.get(REVISION_KIND, f"{parent}/services/{sid}/revisions/{revision}"):
            raise ApiError(409, f"Revision named '{revision}' already exists.")
        _create_revision(emu, parent, pid, sid, revision, rev_template, generation)
        svc["latestCreatedRevision"] = f"{parent}/services/{sid}/revisions/{revision}"
        revision = svc["latestCreatedRevision"]
    svc["reconciling"] = True
    svc["terminalCondition"] = _condition("Ready", "CONDITION_RECONCILING", now)
    svc["conditions"] = [
        _condition("RoutesReady", "CONDITION_RECONCILING", now),
        _condition("ConfigurationsReady", "CONDITION_RECONCILING", now),
    ]
    svc.setdefault("uri", _uri(sid, pid, location))
    svc.setdefault("urls", [f"https://{sid}-{number}.{location}.run.app", _uri(sid, pid, location)])
    _save(emu, SERVICE_KIND, svc)
    return _start_op(
        emu,
        parent,
        completer_name="run.service.deploy",
        duration_kind="run.service.deploy",
        kind="Service",
        resource=svc,
        args={"pid": pid, "generation": generation, "revision": revision},
    )


def _create_revision(
    emu: Emulator,
    parent: str,
    pid: str,
    sid: str,
    revision: str,
    template: dict[str, Any],
    generation: int,
) -> None:
    now = _now(emu)
    location = parent.split("/")[3]
    name = f"{parent}/services/{sid}/revisions/{revision}"
    rev: dict[str, Any] = {
        "name": name,
        "uid": str(uuid.uuid4()),
        "generation": "1",
        "createTime": now,
        "updateTime": now,
        "launchStage": "GA",
        "service": sid,
        "reconciling": True,
        "observedGeneration": "1",
        "conditions": [
            _condition("ResourcesAvailable", "CONDITION_RECONCILING", now),
            _condition("ContainerHealthy", "CONDITION_RECONCILING", now),
        ],
        "logUri": (
            f"https://console.cloud.google.com/logs/viewer?project={pid}&resource=cloud_run_"
            f"revision/service_name/{sid}/revision_name/{revision}&location={location}"
        ),
        "_serviceGeneration": generation,
    }
    for key in (
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
    ):
        if key in template:
            rev[key] = copy.deepcopy(template[key])
    rev["etag"] = _etag(_public(rev))
    emu.store.put(REVISION_KIND, name, rev)


@completer("run.service.deploy")
def _finish_deploy(emu: Emulator, op: dict[str, Any]) -> dict[str, Any] | None:
    now = _now(emu)
    svc = emu.store.get(SERVICE_KIND, op["target"])
    rev_name = op["args"]["revision"]
    rev = emu.store.get(REVISION_KIND, rev_name) if rev_name else None
    if svc is None:
        _fail_op(op, "NOT_FOUND", "The service was deleted while it was being deployed.")
        return None
    problem: str | None = None
    if rev is not None and rev.get("reconciling"):
        sid = svc["name"].rsplit("/", 1)[-1]
        template: dict[str, Any] = {k: rev[k] for k in ("containers", "serviceAccount") if k in rev}
        outcome = emu.outcomes.take("revision", sid)
        problem = outcome if outcome is not None else None
        if problem is None:
            problem = _template_problem(emu, op["args"]["pid"], template, op["created"], "Revision")
        short = rev_name.rsplit("/", 1)[-1]
        rev["reconciling"] = False
        if problem is not None:
            problem = f"Revision '{short}' is not ready and cannot serve traffic. {problem}"
            rev["conditions"] = [
                _condition("ResourcesAvailable", "CONDITION_SUCCEEDED", now),
                _condition("ContainerHealthy", "CONDITION_FAILED", now, message=problem),
                _condition("Ready", "CONDITION_FAILED", now, message=problem),
            ]
        else:
            rev["conditions"] = [
                _condition("Ready", "CONDITION_SUCCEEDED", now),
                _condition("ResourcesAvailable", "CONDITION_SUCCEEDED", now),
                _condition("ContainerHealthy", "CONDITION_SUCCEEDED", now),
            ]
            rev["_ready"] = True
        rev["updateTime"] = now
        rev.pop("etag", None)
        rev["etag"] = _etag(_public(rev))
        emu.store.put(REVISION_KIND, rev_name, rev)
    elif rev is not None and not rev.get("_ready"):
        # a redeploy of a spec whose revision already failed (no template change)
        problem = next(
            (c.get("message") for c in rev.get("conditions", []) if c["type"] == "Ready"), None
        )
    if int(svc["generation"]) == op["args"]["generation"]:
        svc["observedGeneration"] = svc["generation"]
        svc["reconciling"] = False
        if problem is not None:
            svc["terminalCondition"] = _condition(
                "Ready", "CONDITION_FAILED", now, message=problem, reason="REVISION_FAILED"
            )
            svc["conditions"] = [
                _condition("RoutesReady", "CONDITION_FAILED", now, message=problem),
                _condition("ConfigurationsReady", "CONDITION_FAILED", now, message=problem),
            ]
        else:
            svc["latestReadyRevision"] = rev_name
            svc["terminalCondition"] = _condition("Ready", "CONDITION_SUCCEEDED", now)
            svc["conditions"] = [
                _condition("RoutesReady", "CONDITION_SUCCEEDED", now),
                _condition("ConfigurationsReady", "CONDITION_SUCCEEDED", now),
            ]
            svc["trafficStatuses"] = [
                {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}
            ]
        _save(emu, SERVICE_KIND, svc)
    op["metadata"]["resource"] = _public(svc)
    if problem is not None:
        _fail_op(op, "FAILED_PRECONDITION", problem)
        return None
    return _any("Service", svc)


@completer("run.snapshot")
def _finish_delete(emu: Emulator, op: dict[str, Any]) -> dict[str, Any]:
    return _any(op["args"]["kind"], op["metadata"]["resource"])


@router.route("POST", "/v2/projects/{project}/locations/{location}/services")
def create_service(req: Request, project: str, location: str) -> dict[str, Any]:
    parent, pid, number = _parent(req.emu, project, location)
    sid = _check_id("service", req.arg("serviceId"))
    spec = _body(req, "GoogleCloudRunV2Service", "service")
    with req.emu.store.transaction():
        if _get_service(req.emu, parent, sid) is not None:
            raise ApiError(409, f"Resource '{sid}' already exists.")
        svc = _new_resource(req.emu, _service_key(parent, sid))
        return _deploy(req.emu, parent, pid, number, svc, spec)


@router.route("GET", "/v2/projects/{project}/locations/{location}/services/{service}")
def get_service(req: Request, project: str, location: str, service: str) -> dict[str, Any]:
    parent, _, _ = _parent(req.emu, project, location)
    return _public(_must_service(req.emu, parent, service))


_PAGING = Paging(default_size=100, max_size=1000)


def _page(req: Request, items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return paginate(req, [_public(i) for i in items], _PAGING, key=key)


@router.route("GET", "/v2/projects/{project}/locations/{location}/services")
def list_services(req: Request, project: str, location: str) -> dict[str, Any]:
    parent, _, _ = _parent(req.emu, project, location)
    items = [v for _, v in req.emu.store.list(SERVICE_KIND, parent + "/services/")]
    return _page(req, items, "services")


@router.route("PATCH", "/v2/projects/{project}/locations/{location}/services/{service}")
def update_service(req: Request, project: str, location: str, service: str) -> dict[str, Any]:
    parent, pid, number = _parent(req.emu, project, location)
    spec = _body(req, "GoogleCloudRunV2Service", "service")
    with req.emu.store.transaction():
        svc = _get_service(req.emu, parent, service)
        if svc is None:
            if (req.arg("allowMissing") or "").lower() != "true":
                raise _missing("SERVICE", service, location, pid)
            svc = _new_resource(req.emu, _service_key(parent, service))
        elif spec.get("etag") and spec["etag"] != svc.get("etag"):
            raise ApiError(
                409,
                f"Etag mismatch: the service '{service}' was modified; read it and retry.",
                status="ABORTED",
            )
        return _deploy(req.emu, parent, pid, number, svc, spec)


@router.route("DELETE", "/v2/projects/{project}/locations/{location}/services/{service}")
def delete_service(req: Request, project: str, location: str, service: str) -> dict[str, Any]:
    parent, _, _ = _parent(req.emu, project, location)
    with req.emu.store.transaction():
        svc = _must_service(req.emu, parent, service)
        etag = req.arg("etag")
        if etag and etag != svc.get("etag"):
            raise ApiError(409, "Etag mismatch.", status="ABORTED")
        svc["reconciling"] = True
        return _delete(
            req.emu,
            parent,
            SERVICE_KIND,
            svc,
            children=REVISION_KIND,
            op_kind="Service",
            duration_kind="run.service.delete",
        )


# -- revisions -----------------------------------------------------------------------------------


@router.route(
    "GET", "/v2/projects/{project}/locations/{location}/services/{service}/revisions/{revision}"
)
def get_revision(
    req: Request, project: str, location: str, service: str, revision: str
) -> dict[str, Any]:
    parent, pid, _ = _parent(req.emu, project, location)
    rev = req.emu.store.get(REVISION_KIND, f"{parent}/services/{service}/revisions/{revision}")
    if rev is None:
        raise _missing("REVISION", revision, location, pid)
    return _public(rev)


@router.route("GET", "/v2/projects/{project}/locations/{location}/services/{service}/revisions")
def list_revisions(req: Request, project: str, location: str, service: str) -> dict[str, Any]:
    parent, _, _ = _parent(req.emu, project, location)
    svc = _must_service(req.emu, parent, service)
    revs = [v for _, v in req.emu.store.list(REVISION_KIND, svc["name"] + "/revisions/")]
    revs.sort(key=lambda r: (r["_serviceGeneration"], r["name"]), reverse=True)
    return _page(req, revs, "revisions")


# -- IAM on services and jobs --------------------------------------------------------------------


def _iam_target(req: Request, project: str, location: str, kind: str, rid: str) -> str:
    parent, pid, _ = _parent(req.emu, project, location)
    store_kind = SERVICE_KIND if kind == "services" else JOB_KIND
    key = f"{parent}/{kind}/{rid}"
    if req.emu.store.get(store_kind, key) is None:
        raise _missing("SERVICE" if kind == "services" else "JOB", rid, location, pid)
    return key


def _get_policy(req: Request, project: str, location: str, kind: str, rid: str) -> dict[str, Any]:
    version = req.arg("options.requestedPolicyVersion", "0")
    if version not in ("0", "1", "3"):
        raise ApiError(400, f"Invalid requested policy version {version}.")
    key = _iam_target(req, project, location, kind, rid)
    return policies.render(policies.get_policy(req.emu, key))


def _set_policy(req: Request, project: str, location: str, kind: str, rid: str) -> dict[str, Any]:
    body = req.json()
    policy = body.get("policy")
    if not isinstance(policy, dict):
        raise ApiError(400, "Request contains an invalid argument: policy is required.")
    key = _iam_target(req, project, location, kind, rid)
    return policies.render(policies.set_policy(req.emu, key, policy))


def _test_permissions(
    req: Request, project: str, location: str, kind: str, rid: str
) -> dict[str, Any]:
    _iam_target(req, project, location, kind, rid)
    perms = req.json().get("permissions") or []
    return {"permissions": perms} if perms else {}


for _kind, _var in (("services", "service"), ("jobs", "job")):
    _base = f"/v2/projects/{{project}}/locations/{{location}}/{_kind}/{{{_var}}}"

    def _make(fn: Any, kind: str, var: str) -> Any:
        def handler(req: Request, project: str, location: str, **kw: str) -> dict[str, Any]:
            return fn(req, project, location, kind, kw[var])  # type: ignore[no-any-return]

        return handler

    router.route("GET", _base + ":getIamPolicy")(_make(_get_policy, _kind, _var))
    router.route("POST", _base + ":setIamPolicy")(_make(_set_policy, _kind, _var))
    router.route("POST", _base + ":testIamPermissions")(_make(_test_permissions, _kind, _var))


# -- jobs ----------------------------------------------------------------------------------------


def _job_key(parent: str, job: str) -> str:
    return f"{parent}/jobs/{job}"


def _must_job(emu: Emulator, parent: str, job: str) -> dict[str, Any]:
    return _must(emu, JOB_KIND, _job_key(parent, job), "JOB")


_JOB_SPEC = (
    "labels",
    "annotations",
    "client",
    "clientVersion",
    "launchStage",
    "binaryAuthorization",
    "template",
)


def _update_job(
    emu: Emulator, parent: str, pid: str, number: str, job: dict[str, Any], spec: dict[str, Any]
) -> dict[str, Any]:
    now = _now(emu)
    template = copy.deepcopy(spec.get("template") or {})
    template["template"] = _task_template_defaults(template.get("template") or {}, number)
    _check_template(template["template"], service=False)
    _check_service_account(emu, template["template"])
    template.setdefault("taskCount", 1)
    for key in _JOB_SPEC:
        if key in spec:
            job[key] = spec[key]
        else:
            job.pop(key, None)
    job["template"] = template
    job.setdefault("launchStage", "GA")
    job["generation"] = str(int(job.get("generation", "0")) + 1)
    job["updateTime"] = now
    job["lastModifier"] = CREATOR
    job["reconciling"] = True
    job["terminalCondition"] = _condition("Ready", "CONDITION_RECONCILING", now)
    _save(emu, JOB_KIND, job)
    return _start_op(
        emu,
        parent,
        completer_name="run.job.update",
        duration_kind="run.job.update",
        kind="Job",
        resource=job,
        args={"generation": int(job["generation"])},
    )


@completer("run.job.update")
def _finish_job(emu: Emulator, op: dict[str, Any]) -> dict[str, Any] | None:
    job = emu.store.get(JOB_KIND, op["target"])
    if job is None:
        _fail_op(op, "NOT_FOUND", "The job was deleted while it was being updated.")
        return None
    if int(job["generation"]) == op["args"]["generation"]:
        job["reconciling"] = False
        job["observedGeneration"] = job["generation"]
        job["terminalCondition"] = _condition("Ready", "CONDITION_SUCCEEDED", _now(emu))
        _save(emu, JOB_KIND, job)
    op["metadata"]["resource"] = _public(job)
    return _any("Job", job)


@router.route("POST", "/v2/projects/{project}/locations/{location}/jobs")
def create_job(req: Request, project: str, location: str) -> dict[str, Any]:
    parent, pid, number = _parent(req.emu, project, location)
    jid = _check_id("job", req.arg("jobId"))
    spec = _body(req, "GoogleCloudRunV2Job", "job")
    with req.emu.store.transaction():
        if req.emu.store.get(JOB_KIND, _job_key(parent, jid)) is not None:
            raise ApiError(409, f"Resource '{jid}' already exists.")
        job = _new_resource(req.emu, _job_key(parent, jid))
        return _update_job(req.emu, parent, pid, number, job, spec)


@router.route("GET", "/v2/projects/{project}/locations/{location}/jobs/{job}")
def get_job(req: Request, project: str, location: str, job: str) -> dict[str, Any]:
    parent, _, _ = _parent(req.emu, project, location)
    return _public(_must_job(req.emu, parent, job))


@router.route("GET", "/v2/projects/{project}/locations/{location}/jobs")
def list_jobs(req: Request, project: str, location: str) -> dict[str, Any]:
    parent, _, _ = _parent(req.emu, project, location)
    items = [v for _, v in req.emu.store.list(JOB_KIND, parent + "/jobs/")]
    return _page(req, items, "jobs")


@router.route("PATCH", "/v2/projects/{project}/locations/{location}/jobs/{job}")
def update_job(req: Request, project: str, location: str, job: str) -> dict[str, Any]:
    parent, pid, number = _parent(req.emu, project, location)
    spec = _body(req, "GoogleCloudRunV2Job", "job")
    with req.emu.store.transaction():
        found = req.emu.store.get(JOB_KIND, _job_key(parent, job))
        if found is None:
            if (req.arg("allowMissing") or "").lower() != "true":
                raise _missing("JOB", job, location, pid)
            found = _new_resource(req.emu, _job_key(parent, job))
        elif spec.get("etag") and spec["etag"] != found.get("etag"):
            raise ApiError(409, f"Etag mismatch: the job '{job}' was modified.", status="ABORTED")
        return _update_job(req.emu, parent, pid, number, found, spec)


@router.route("DELETE", "/v2/projects/{project}/locations/{location}/jobs/{job}")
def delete_job(req: Request, project: str, location: str, job: str) -> dict[str, Any]:
    parent, _, _ = _parent(req.emu, project, location)
    with req.emu.store.transaction():
        return _delete(
            req.emu,
            parent,
            JOB_KIND,
            _must_job(req.emu, parent, job),
            children=EXECUTION_KIND,
            op_kind="Job",
            duration_kind="run.job.update",
        )


# -- executions ----------------------------------------------------------------------------------


def _log_uri(pid: str, location: str, job: str, execution: str) -> str:
    return (
        f"https://console.cloud.google.com/logs/viewer?project={pid}&advancedFilter="
        "resource.type%3D%22cloud_run_job%22%0A"
        f"resource.labels.job_name%3D%22{job}%22%0A"
        f"resource.labels.location%3D%22{location}%22%0A"
        f"labels.%22run.googleapis.com/execution_name%22%3D%22{execution}%22"
    )


def _exec_ref(execution: dict[str, Any], status: str) -> dict[str, Any]:
    ref = {
        "name": execution["name"].rsplit("/", 1)[-1],
        "createTime": execution["createTime"],
        "completionStatus": status,
    }
    if execution.get("completionTime"):
        ref["completionTime"] = execution["completionTime"]
    return ref


@router.route("POST", "/v2/projects/{project}/locations/{location}/jobs/{job}:run")
def run_job(req: Request, project: str, location: str, job: str) -> dict[str, Any]:
    parent, pid, _ = _parent(req.emu, project, location)
    body = _body(req, "GoogleCloudRunV2RunJobRequest", "")
    store = req.emu.store
    with store.transaction():
        found = _must_job(req.emu, parent, job)
        if body.get("etag") and body["etag"] != found.get("etag"):
            raise ApiError(409, "Etag mismatch.", status="ABORTED")
        if found.get("reconciling"):
            raise ApiError(
                400,
                f"Job '{job}' is not ready: it is being updated. Wait for the update to finish.",
                status="FAILED_PRECONDITION",
            )
        now = _now(req.emu)
        template = found["template"]
        task_template = copy.deepcopy(template["template"])
        task_count = int(template.get("taskCount") or 1)
        overrides = body.get("overrides") or {}
        if overrides.get("taskCount"):
            task_count = int(overrides["taskCount"])
        if overrides.get("timeout"):
            task_template["timeout"] = overrides["timeout"]
        for o in overrides.get("containerOverrides") or []:
            for c in task_template.get("containers", []):
                if o.get("name") in (None, "", c.get("name")):
                    if o.get("args") or o.get("clearArgs"):
                        c["args"] = o.get("args") or []
                    if o.get("env"):
                        c["env"] = o["env"]
        eid = f"{job}-{_rand(5, string.ascii_lowercase + string.digits)}"
        name = f"{found['name']}/executions/{eid}"
        execution: dict[str, Any] = {
            "name": name,
            "uid": str(uuid.uuid4()),
            "creator": CREATOR,
            "generation": "1",
            "createTime": now,
            "startTime": now,
            "updateTime": now,
            "launchStage": found.get("launchStage", "GA"),
            "job": job,
            "taskCount": task_count,
            "template": task_template,
            "reconciling": True,
            "conditions": [
                _condition("ResourcesAvailable", "CONDITION_SUCCEEDED", now),
                _condition("Started", "CONDITION_SUCCEEDED", now),
                _condition("Completed", "CONDITION_PENDING", now),
            ],
            "observedGeneration": "1",
            "runningCount": task_count,
            "logUri": _log_uri(pid, location, job, eid),
        }
        if template.get("parallelism"):
            execution["parallelism"] = template["parallelism"]
        if template.get("labels"):
            execution["labels"] = dict(template["labels"])
        if template.get("annotations"):
            execution["annotations"] = dict(template["annotations"])
        _save(req.emu, EXECUTION_KIND, execution)
        found["executionCount"] = int(found.get("executionCount", 0)) + 1
        found["latestCreatedExecution"] = _exec_ref(execution, "EXECUTION_RUNNING")
        _save(req.emu, JOB_KIND, found)
        return _start_op(
            req.emu,
            parent,
            completer_name="run.execution",
            duration_kind="run.execution",
            kind="Execution",
            resource=execution,
            args={"pid": pid, "job": job},
        )


@completer("run.execution")
def _finish_execution(emu: Emulator, op: dict[str, Any]) -> dict[str, Any] | None:
    execution = emu.store.get(EXECUTION_KIND, op["target"])
    if execution is None:
        _fail_op(op, "NOT_FOUND", "The execution was deleted.")
        return None
    if not execution.get("reconciling"):  # cancelled meanwhile
        op["metadata"]["resource"] = _public(execution)
        return _any("Execution", execution)
    now = _now(emu)
    eid = execution["name"].rsplit("/", 1)[-1]
    n = int(execution["taskCount"])
    problem = _template_problem(emu, op["args"]["pid"], execution["template"], op["created"], "Job")
    if problem is None:
        outcome = emu.outcomes.take("execution", op["args"]["job"])
        if outcome is not None:
            problem = outcome.replace("{execution}", eid) if outcome else ""
            problem = problem or f"Task {eid}-task0 failed with exit code 1."
    execution["reconciling"] = False
    execution.pop("runningCount", None)
    execution["completionTime"] = now
    execution["updateTime"] = now
    seconds = max(0, round(emu.clock() - op["created"]))
    if problem is None:
        execution["succeededCount"] = n
        completed = _condition(
            "Completed",
            "CONDITION_SUCCEEDED",
            now,
            message=f"Execution completed successfully in {seconds}s.",
        )
        status = "EXECUTION_SUCCEEDED"
    else:
        execution["failedCount"] = n
        completed = _condition(
            "Completed",
            "CONDITION_FAILED",
            now,
            message=problem,
            executionReason="NON_ZERO_EXIT_CODE",
        )
        status = "EXECUTION_FAILED"
    execution["conditions"] = [*execution["conditions"][:2], completed]
    _save(emu, EXECUTION_KIND, execution)
    job = emu.store.get(JOB_KIND, execution["name"].split("/executions/")[0])
    if job is not None and (job.get("latestCreatedExecution") or {}).get("name") == eid:
        job["latestCreatedExecution"] = _exec_ref(execution, status)
        _save(emu, JOB_KIND, job)
    op["metadata"]["resource"] = _public(execution)
    if problem is not None:
        _fail_op(op, "FAILED_PRECONDITION", problem)
        return None
    return _any("Execution", execution)


def _execution_key(parent: str, job: str, execution: str) -> str:
    return f"{parent}/jobs/{job}/executions/{execution}"


def _must_execution(emu: Emulator, parent: str, job: str, execution: str) -> dict[str, Any]:
    return _must(emu, EXECUTION_KIND, _execution_key(parent, job, execution), "EXECUTION")


@router.route(
    "GET", "/v2/projects/{project}/locations/{location}/jobs/{job}/executions/{execution}"
)
def get_execution(
    req: Request, project: str, location: str, job: str, execution: str
) -> dict[str, Any]:
    parent, _, _ = _parent(req.emu, project, location)
    return _public(_must_execution(req.emu, parent, job, execution))


@router.route("GET", "/v2/projects/{project}/locations/{location}/jobs/{job}/executions")
def list_executions(req: Request, project: str, location: str, job: str) -> dict[str, Any]:
    parent, _, _ = _parent(req.emu, project, location)
    found = _must_job(req.emu, parent, job)
    items = [v for _, v in req.emu.store.list(EXECUTION_KIND, found["name"] + "/executions/")]
    items.sort(key=lambda e: (e["createTime"], e["name"]), reverse=True)  # newest first
    return _page(req, items, "executions")


@router.route(
    "DELETE", "/v2/projects/{project}/locations/{location}/jobs/{job}/executions/{execution}"
)
def delete_execution(
    req: Request, project: str, location: str, job: str, execution: str
) -> dict[str, Any]:
    parent, _, _ = _parent(req.emu, project, location)
    with req.emu.store.transaction():
        return _delete(
            req.emu,
            parent,
            EXECUTION_KIND,
            _must_execution(req.emu, parent, job, execution),
            children=None,
            op_kind="Execution",
            duration_kind="run.job.update",
        )


@router.route(
    "POST", "/v2/projects/{project}/locations/{location}/jobs/{job}/executions/{execution}:cancel"
)
def cancel_execution(
    req: Request, project: str, location: str, job: str, execution: str
) -> dict[str, Any]:
    parent, _, _ = _parent(req.emu, project, location)
    req.json()
    with req.emu.store.transaction():
        found = _must_execution(req.emu, parent, job, execution)
        if found.get("reconciling"):
            now = _now(req.emu)
            found["reconciling"] = False
            found["cancelledCount"] = found.pop("runningCount", 0) or found["taskCount"]
            found["completionTime"] = now
            found["conditions"] = [
                *found["conditions"][:2],
                _condition(
                    "Completed",
                    "CONDITION_FAILED",
                    now,
                    message="The execution was cancelled.",
                    executionReason="CANCELLED",
                ),
            ]
            _save(req.emu, EXECUTION_KIND, found)
        return _snapshot_op(req.emu, parent, "Execution", found, "run.job.update")


# -- operations ----------------------------------------------------------------------------------


def _must_op(req: Request, project: str, location: str, op_id: str) -> dict[str, Any]:
    parent, _, _ = _parent(req.emu, project, location)
    op = req.emu.ops.get(op_id)
    if (
        op is None
        or op.get("deleted")
        or not op["completer"].startswith("run.")
        or op["args"]["parent"] != parent
    ):
        raise ApiError(404, f"Operation '{parent}/operations/{op_id}' not found.")
    return op


@router.route("GET", "/v2/projects/{project}/locations/{location}/operations/{operation}")
def get_operation(req: Request, project: str, location: str, operation: str) -> dict[str, Any]:
    return _op_json(_must_op(req, project, location, operation))


@router.route("DELETE", "/v2/projects/{project}/locations/{location}/operations/{operation}")
def delete_operation(req: Request, project: str, location: str, operation: str) -> dict[str, Any]:
    _must_op(req, project, location, operation)
    req.emu.ops.delete(operation)
    return {}


@router.route("GET", "/v2/projects/{project}/locations/{location}/operations")
def list_operations(req: Request, project: str, location: str) -> dict[str, Any]:
    parent, _, _ = _parent(req.emu, project, location)
    ops = [
        o
        for o in req.emu.ops.list()
        if o["completer"].startswith("run.") and o["args"].get("parent") == parent
    ]
    out = _page(req, [_op_json(o) for o in ops], "operations")
    return out
