"""The container's environment for the service and both jobs: one place, from deployer/contract.py.

Every variable of CONTRACT gets its value here. DJANGO_PROJECT_SETTINGS only when config names
the settings module (``settings_module``); unset otherwise, and the container finds the project's
settings from manage.py. Secret values never pass through djdeploy: SECRET_KEY,
DB_PASSWORD and DJANGO_SUPERUSER_PASSWORD, and the user's secret_env, are Secret Manager
references pinned to a numeric version, resolved when the step observes. So is a Redis
broker's URL (CELERY_BROKER_URL, REDIS_URL): it holds the instance's AUTH string, so it is read
from the secret steps/redis_url.py writes, never set as a value. "latest" never goes into
a template, so a new secret version never silently changes what a running revision reads: the
next `up` shows the change and deploys it.

Also the pieces of the container spec the service and the jobs share (volumes, mounts, VPC
access, the runtime service account), so the three stay identical, and the checks both make
before comparing specs: is the resource ours (``config.names.owns``), and does every secret it
reads have an enabled version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deployer import errors
from deployer.config.schema import BROKER_ENV, REDIS_ENV
from deployer.contract import CONTRACT
from deployer.errors import DeployError
from deployer.gcp.secrets import previous_enabled
from deployer.steps.base import (
    Broken,
    Change,
    FieldChange,
    NotOurs,
    Operation,
    Transient,
    field_changes,
)

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud

SERVICE = "service"
MIGRATE = "migrate"
DB_INIT = "db-init"
MANAGE = "manage"  # a scheduled management command's job ([[cron]]): the service's env
WORKER = "worker"  # the [worker] pool: the service's env
TARGETS = (SERVICE, MIGRATE, DB_INIT, MANAGE, WORKER)

SETTINGS_MODULE = "djdeploy_runtime.settings"
MEDIA_ROOT = "/app/media"
STATIC_ROOT = "/srv/static"  # outside the project tree (/app), collected at image build
CLOUDSQL_MOUNT = "/cloudsql"
FUSE_UID = 2000
#: variables set only when configured (their value is None otherwise: the container derives them)
OPTIONAL = frozenset({"DJANGO_PROJECT_SETTINGS"})
#: what a failed revision or execution says while a fresh grant on a secret has not reached
#: Cloud Run
SECRET_NOT_GRANTED_YET = "Permission denied on secret"
#: seconds between attempts (a deploy or an execution) that failed on SECRET_NOT_GRANTED_YET (a
#: deploy takes about 30 s; a grant reaches Cloud Run within minutes)
SECRET_GRANT_RETRY = 30.0


#: a secret reference to the newest enabled version, and to the one before it (a rotated
#: SECRET_KEY's fallback, a rotated superuser password's predecessor: set only when there is one)
LATEST = "latest"
PREVIOUS = "previous"


@dataclass(frozen=True)
class Inputs:
    """What the env needs from the live cloud: the project number (for the service URL), the
    numeric version each referenced secret resolves to (None: no enabled version), and, for a
    secret read as PREVIOUS, its second-newest enabled version."""

    project_number: str
    versions: Mapping[str, str | None] = field(default_factory=dict)
    previous: Mapping[str, str | None] = field(default_factory=dict)


def service_urls(service: Mapping[str, Any] | None) -> tuple[str, ...]:
    """Every URL Cloud Run serves the service on: ``urls`` (the deterministic
    SERVICE-NUMBER.REGION.run.app and the older SERVICE-HASH-CODE.a.run.app) and ``uri``."""
    if not service:
        return ()
    found = [*(service.get("urls") or []), service.get("uri") or ""]
    return tuple(dict.fromkeys(u for u in found if isinstance(u, str) and u))


#: the ingress of a service behind a load balancer: its run.app hosts are closed to the internet
LOAD_BALANCED = "internal-and-cloud-load-balancing"


def hosts(config: Config, target: str, inputs: Inputs) -> list[str]:
    """ALLOWED_HOSTS: the service's deterministic host; in the service, its older a.run.app
    host as a pattern (``Names.run_app_host_pattern``: its hash is made up on the first deploy),
    unless the service sits behind a load balancer, which passes any Host; then
    config.domains. All known before the service exists, so a first deploy is one revision
    (docs/configuration.md, "Hosts and custom domains")."""
    names = [config.names.service_url(inputs.project_number).removeprefix("https://")]
    if target == SERVICE and config.service.ingress != LOAD_BALANCED:
        names.append(config.names.run_app_host_pattern)
    return list(dict.fromkeys([*names, *config.domains]))


def origins(config: Config, target: str, inputs: Inputs) -> list[str]:
    """CSRF_TRUSTED_ORIGINS: https:// + each exact host of ALLOWED_HOSTS. Not the a.run.app
    pattern: Django trusts a form posted on the host it serves without it (the Origin equals
    the request's own host), and a wildcard origin there would trust other sites."""
    return [f"https://{h}" for h in hosts(config, target, inputs) if "*" not in h]


_PLAIN: dict[str, Callable[[Config, str, Inputs], str | None]] = {
    "DJANGO_SETTINGS_MODULE": lambda c, t, i: SETTINGS_MODULE,
    "DJANGO_PROJECT_SETTINGS": lambda c, t, i: c.settings_module,
    "DB_NAME": lambda c, t, i: c.names.database,
    "DB_USER": lambda c, t, i: c.names.db_user,
    "DB_HOST": lambda c, t, i: f"{CLOUDSQL_MOUNT}/{c.names.connection_name}",
    "DB_PORT": lambda c, t, i: "5432",
    "MEDIA_ROOT": lambda c, t, i: MEDIA_ROOT,
    "STATIC_ROOT": lambda c, t, i: STATIC_ROOT,
    "ALLOWED_HOSTS": lambda c, t, i: ",".join(hosts(c, t, i)),
    "CSRF_TRUSTED_ORIGINS": lambda c, t, i: ",".join(origins(c, t, i)),
    "GS_BUCKET_NAME": lambda c, t, i: c.names.bucket,
    "DJANGO_SUPERUSER_USERNAME": lambda c, t, i: c.superuser.username,
    "DJANGO_SUPERUSER_EMAIL": lambda c, t, i: c.superuser.email,
    "DB_EXTENSIONS": lambda c, t, i: ",".join(c.database.extensions),
    "GOOGLE_CLOUD_PROJECT": lambda c, t, i: c.project,
    "HEALTH_PATH": lambda c, t, i: c.probes.path,
}

_SECRET: dict[str, tuple[Callable[[Config], str], str]] = {
    "SECRET_KEY": (lambda c: c.names.secret_key, LATEST),
    "SECRET_KEY_FALLBACKS": (lambda c: c.names.secret_key, PREVIOUS),
    "DB_PASSWORD": (lambda c: c.names.secret_db_password, LATEST),
    "DJANGO_SUPERUSER_PASSWORD": (lambda c: c.names.secret_superuser_password, LATEST),
    "DJANGO_SUPERUSER_PASSWORD_PREVIOUS": (lambda c: c.names.secret_superuser_password, PREVIOUS),
}


def _applies(where: str, target: str) -> bool:
    return where == "all" or where == target


def secret_refs(config: Config, target: str) -> dict[str, tuple[str, str]]:
    """env name -> (secret id, pinned version, LATEST or PREVIOUS) for every secret env var of
    target."""
    out: dict[str, tuple[str, str]] = {}
    for var in CONTRACT:
        if var.secret and _applies(var.where, target):
            secret_id, version = _SECRET[var.name]
            out[var.name] = (secret_id(config), version)
    for name, ref in config.app_secret_env.items():
        out[name] = (ref.secret, ref.version)
    if config.redis_broker:  # the instance's URL, AUTH string included (steps/redis_url.py)
        for name in (BROKER_ENV, REDIS_ENV):
            out[name] = (config.names.redis_url_secret, LATEST)
    return out


def secrets_to_resolve(
    config: Config, targets: tuple[str, ...] = TARGETS, *, version: str = LATEST
) -> list[str]:
    """Secret ids whose LATEST (or PREVIOUS) enabled version must be looked up (sorted,
    unique)."""
    ids = {
        sid
        for target in targets
        for sid, pinned in secret_refs(config, target).values()
        if pinned == version
    }
    return sorted(ids)


def observe_inputs(cloud: Cloud, config: Config, targets: tuple[str, ...] = TARGETS) -> Inputs:
    """Read the project number and the latest enabled version of every referenced secret (and
    the one before it, for those read as PREVIOUS)."""
    number = cloud.projects.number()
    versions = {
        sid: cloud.secrets.latest_version(sid) for sid in secrets_to_resolve(config, targets)
    }
    previous = {
        sid: previous_enabled(cloud.secrets.list_versions(sid) or [])
        for sid in secrets_to_resolve(config, targets, version=PREVIOUS)
    }
    return Inputs(project_number=number, versions=versions, previous=previous)


def pending_redis_url(config: Config) -> str:
    """The version plan shows for the Redis broker's URL secret before it has one (the
    redis-url step adds it once the instance is ready: apply never deploys this)."""
    return f"<{config.names.redis_url_secret}: once the redis instance is ready>"


def missing_redis(config: Config, inputs: Inputs) -> list[str]:
    """The env vars of a Redis broker, as "ENV (secret S not written yet)", while its URL
    secret has no version ([] then, or when there is no Redis broker)."""
    sid = config.names.redis_url_secret
    if not config.redis_broker or inputs.versions.get(sid):
        return []
    return [f"{name} (secret {sid} not written yet)" for name in (BROKER_ENV, REDIS_ENV)]


def missing_secrets(config: Config, target: str, inputs: Inputs) -> list[str]:
    """Env vars whose secret has no enabled version, as "ENV (secret S)" (not the Redis
    broker's URL secret, which a step of this run writes: missing_redis)."""
    return [
        f"{name} (secret {sid})"
        for name, (sid, version) in sorted(secret_refs(config, target).items())
        if version == LATEST
        and not inputs.versions.get(sid)
        and sid != config.names.redis_url_secret
    ]


def require_inputs(cloud: Cloud, config: Config, target: str, what: str) -> Inputs:
    """observe_inputs for an apply: DeployError naming ``what`` ("service demo-django") when
    a secret it reads has no enabled version (nothing could be deployed)."""
    inputs = observe_inputs(cloud, config, (target,))
    missing = missing_secrets(config, target, inputs)
    if missing:
        raise DeployError(
            f"{what}: no enabled version for "
            + ", ".join(missing)
            + ": run up again after the secrets step, or add a version"
        )
    waiting = missing_redis(config, inputs)
    if waiting:
        raise DeployError(f"{what}: no value for {', '.join(waiting)}: run up again")
    return inputs


def build_env(config: Config, target: str, inputs: Inputs) -> list[dict[str, Any]]:
    """The env list (Cloud Run v2 JSON) for a target of TARGETS ("service", "migrate", ...),
    sorted by name. Raises KeyError for a contract variable without a value here
    (tests/steps/test_service.py guards it) and ValueError when a secret has no enabled version
    (check missing_secrets first)."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}")
    env: dict[str, dict[str, Any]] = {}
    for var in CONTRACT:
        if not _applies(var.where, target):
            continue
        if var.secret:
            continue  # below, with the user's secret env
        value = _PLAIN[var.name](config, target, inputs)
        if value is None:
            if var.name not in OPTIONAL:
                raise ValueError(f"{var.name}: no value for a required contract variable")
            continue
        env[var.name] = {"name": var.name, "value": value}
    for name, value in config.env.items():
        env[name] = {"name": name, "value": value}
    for name, (sid, version) in secret_refs(config, target).items():
        if version == PREVIOUS:
            pinned = inputs.previous.get(sid)
            if not pinned:
                continue  # no earlier enabled version (never rotated): not set
        else:
            pinned = inputs.versions.get(sid) if version == LATEST else version
        if not pinned and sid == config.names.redis_url_secret:
            pinned = pending_redis_url(config)  # plan only: require_inputs refuses first
        if not pinned:
            raise ValueError(f"{name}: secret {sid} has no enabled version")
        env[name] = {
            "name": name,
            "valueSource": {"secretKeyRef": {"secret": sid, "version": str(pinned)}},
        }
    return [env[k] for k in sorted(env)]


def _pins(env: list[dict[str, Any]] | None) -> set[tuple[str, str]]:
    """(secret id, version) of every secret reference in a container's env."""
    out = set()
    for e in env or []:
        ref = (e.get("valueSource") or {}).get("secretKeyRef") or {}
        if ref.get("secret"):
            out.add((str(ref["secret"]).rsplit("/", 1)[-1], str(ref.get("version"))))
    return out


def template_pins(template: Mapping[str, Any] | None) -> set[tuple[str, str]]:
    """Every (secret id, version) a Cloud Run revision or task template reads."""
    out: set[tuple[str, str]] = set()
    for container in (template or {}).get("containers") or []:
        out |= _pins(container.get("env"))
    return out


# -- what the service and the jobs check first ---------------------------------------------------


def run_failure(message: str) -> Broken | Transient:
    """A failed revision's or execution's kind: transient while a fresh secret grant has not
    reached Cloud Run (a revision or an execution started right after the grant), broken
    otherwise."""
    if SECRET_NOT_GRANTED_YET in message:
        return Transient(message, delay=SECRET_GRANT_RETRY)
    return Broken(message)


def short(name: str | None) -> str:
    """The last segment of a resource name (a revision, an execution)."""
    return (name or "").rsplit("/", 1)[-1]


def not_ours_message(kind: str, name: str) -> str:
    """Why a Cloud Run ``kind`` ("service", "job") under our name that is not ours is refused."""
    return (
        f"Cloud Run {kind} {name} exists but was not created by djdeploy for this tenant "
        f"(no managed-by=djdeploy / djdeploy-tenant labels): delete it or choose another "
        "tenant or app name"
    )


def not_ours(kind: str, name: str) -> errors.NotOurs:
    """The error apply raises when the resource turns out not to be ours (a create's 409)."""
    return errors.NotOurs(not_ours_message(kind, name))


def refusal(
    config: Config,
    step: Operation,
    *,
    kind: str,
    name: str,
    labels: Mapping[str, str] | None,
    target: str,
    inputs: Inputs,
    info: Mapping[str, str],
) -> Change | None:
    """What the service and the jobs check before comparing specs: the refusal that says why
    nothing can be done (not ours; a secret without an enabled version), or None."""
    if not config.names.owns(labels):
        return step.refuse(
            NotOurs(not_ours_message(kind, name)),
            f"{kind} {name} is not managed by djdeploy",
            info=info,
        )
    missing = missing_secrets(config, target, inputs)
    if missing:
        return step.refuse(
            Broken("no enabled version for " + ", ".join(missing)),
            "secrets without an enabled version",
            info=info,
        )
    return None


# -- the container pieces the service and the jobs share -----------------------------------------


def volumes(config: Config, *, media: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"name": "cloudsql", "cloudSqlInstance": {"instances": [config.names.connection_name]}}
    ]
    if media:
        out.append(
            {
                "name": "media",
                "gcs": {
                    "bucket": config.names.bucket,
                    "readOnly": False,
                    "mountOptions": [
                        "implicit-dirs",
                        f"uid={FUSE_UID}",
                        f"gid={FUSE_UID}",
                    ],
                },
            }
        )
    return out


def volume_mounts(*, media: bool) -> list[dict[str, Any]]:
    out = [{"name": "cloudsql", "mountPath": CLOUDSQL_MOUNT}]
    if media:
        out.append({"name": "media", "mountPath": MEDIA_ROOT})
    return out


_EGRESS = {"private-ranges-only": "PRIVATE_RANGES_ONLY", "all-traffic": "ALL_TRAFFIC"}


def vpc_access(config: Config) -> dict[str, Any] | None:
    """The template's ``vpcAccess``: [vpc], or the Direct VPC egress a Redis broker brings
    (``Config.egress``)."""
    vpc = config.egress
    if vpc is None:
        return None
    out: dict[str, Any] = {"egress": _EGRESS[vpc.egress]}
    if vpc.connector:
        connector = vpc.connector
        if not connector.startswith("projects/"):
            connector = (
                f"projects/{config.project}/locations/{config.region}/connectors/{connector}"
            )
        out["connector"] = connector
    else:
        out["networkInterfaces"] = [{"network": vpc.network, "subnetwork": vpc.subnetwork}]
    return out


def resources(config: Config) -> dict[str, Any]:
    return {"limits": {"cpu": config.service.cpu, "memory": config.service.memory}}


def spec_hash(value: Any) -> str:
    """A short stable hash of a JSON-able spec (a label value: 16 hex digits)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


# -- comparing what we set with what the server answers -----------------------------------------

_ZERO: tuple[Any, ...] = (0, "", False, None)


def project(desired: Any, actual: Any) -> Any:
    """``actual`` cut down to the shape of ``desired``: only the keys desired sets, lists
    element by element when they have the same length; a missing value stands for the type's
    zero value (the server omits zeros, the client fills them). field_changes over
    (desired, project(desired, actual)) then compares exactly the fields we set."""
    if isinstance(desired, dict):
        if actual is None:
            actual = {}
        if not isinstance(actual, dict):
            return actual
        return {k: project(v, actual.get(k)) for k, v in desired.items()}
    if isinstance(desired, list):
        if actual is None:
            return []
        if not isinstance(actual, list) or len(desired) != len(actual):
            return actual
        return [project(d, a) for d, a in zip(desired, actual, strict=True)]
    if actual is None and desired in _ZERO:
        return desired
    return actual


#: keys djdeploy sets only while config asks for them ([vpc], a Redis broker's egress; a
#: connector or a network): when config no longer does, the server's value is drift to remove,
#: not a field the server filled in
MANAGED = frozenset({"vpcAccess", "connector", "networkInterfaces"})


def _with_removals(desired: Any, actual: Any) -> Any:
    """``desired`` with None for each MANAGED key it leaves out that ``actual`` sets (not to a
    zero value), at any depth where the two have the same shape."""
    if isinstance(desired, dict) and isinstance(actual, dict):
        out = {k: _with_removals(v, actual.get(k)) for k, v in desired.items()}
        for key in sorted(MANAGED - desired.keys()):
            if actual.get(key) not in (*_ZERO, {}, []):
                out[key] = None
        return out
    if isinstance(desired, list) and isinstance(actual, list) and len(desired) == len(actual):
        return [_with_removals(d, a) for d, a in zip(desired, actual, strict=True)]
    return desired


def spec_changes(desired: dict[str, Any], actual: Mapping[str, Any] | None) -> list[FieldChange]:
    """The fields where ``actual`` (the server's resource) differs from ``desired``: each field
    we set (``project``), and each MANAGED field config dropped (reported with the new value
    None: the update, which sends ``desired`` whole, removes it)."""
    want = _with_removals(desired, actual)
    return field_changes(want, project(want, actual))
