"""`djdeploy rollback`: all traffic to an earlier ready revision, refused when the database has
applied migrations that revision's image does not know (docs/rollback.md).

Which migrations an image knows, and which the database has applied, come from the records the
migrate job writes into the media bucket (container/djdeploy_runtime/migrate.py):
``.djdeploy/migrations/<execution>.json``. The migrate executions say which image each one ran
(their task template), so:

- applied: the record of the newest succeeded migrate execution that wrote one;
- known by a revision: the record of the newest succeeded migrate execution of that
  revision's image.

The move itself is one write: the service with 100% of its traffic on the revision and the
annotation steps/service.py keeps (the pin), sent with the etag read. So a rollback killed at
any point left either nothing or the whole pin, and running it again converges: without --to,
the target is the ready revision before the service's latest ready one, which a rollback does
not change, so a second run finds the pin in place and changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deployer.errors import DeployError, NotFound
from deployer.steps import container_env as ce
from deployer.steps.jobs import execution_state
from deployer.steps.service import LATEST_TRAFFIC, PIN_ANNOTATION, pin_spec, pinned_revision

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud

#: where the migrate job records migrations, in the media bucket (migrate.py RECORD_DIR)
RECORD_PREFIX = ".djdeploy/migrations/"
#: how many unknown migrations the refusal names before "and N more"
NAMED = 5


class RollbackRefused(DeployError):
    """The target's image does not know migrations the database has applied (or nothing
    says which it knows); --force rolls back anyway. ``why`` is the message without its fix."""

    def __init__(self, why: str, *, fix: str) -> None:
        super().__init__(f"{why}: {fix}")
        self.why = why


@dataclass(frozen=True)
class Rollback:
    """What a rollback did (or, ``changed`` False, found already done)."""

    service: str
    revision: str  # has all the traffic now (after --undo: the latest ready one)
    previous: str  # had it before
    pinned: bool  # False after --undo
    changed: bool
    forced: tuple[str, ...] = ()  # unknown migrations --force rolled back past
    unchecked: str = ""  # why the migrations were not compared (--force without records)

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "revision": self.revision,
            "previous": self.previous,
            "pinned": self.pinned,
            "changed": self.changed,
            "forced_past": list(self.forced),
            "unchecked": self.unchecked,
        }


@dataclass
class Migrations:
    """The migrate records of one tenant, read on demand (a tenant deployed a hundred times
    has a hundred records; a rollback reads two): ``fetch`` answers an execution's record, or
    None; ``executions`` are the migrate job's succeeded ones, newest first."""

    fetch: Callable[[str], dict[str, Any] | None]
    executions: list[dict[str, Any]] = field(default_factory=list)
    _read: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    @classmethod
    def read(cls, cloud: Cloud, config: Config) -> Migrations:
        n = config.names
        executions = [
            e for e in cloud.run.list_executions(n.migrate_job) if execution_state(e) == "succeeded"
        ]
        found = set(cloud.storage.list_objects(n.bucket, RECORD_PREFIX))

        def fetch(eid: str) -> dict[str, Any] | None:
            name = f"{RECORD_PREFIX}{eid}.json"
            if name not in found:
                return None
            try:
                doc = json.loads(cloud.storage.download(n.bucket, name))
            except (NotFound, ValueError):
                return None  # deleted meanwhile, or not a record: as if never written
            return doc if isinstance(doc, dict) else None

        return cls(fetch, executions)

    def record(self, eid: str) -> dict[str, Any] | None:
        if eid not in self._read:
            self._read[eid] = self.fetch(eid)
        return self._read[eid]

    def applied(self) -> tuple[str, set[str]] | None:
        """(execution, applied migrations) of the newest record."""
        for e in self.executions:
            eid = ce.short(e.get("name"))
            doc = self.record(eid)
            if doc is not None:
                return eid, _flat(doc.get("applied"))
        return None

    def known(self, image: str) -> tuple[str, set[str]] | None:
        """(execution, known migrations) of the newest record made with ``image``."""
        for e in self.executions:
            eid = ce.short(e.get("name"))
            containers = (e.get("template") or {}).get("containers") or [{}]
            if containers[0].get("image") != image:
                continue
            doc = self.record(eid)
            if doc is not None:
                return eid, _flat(doc.get("known"))
        return None


def _flat(by_app: Any) -> set[str]:
    """{app: [names]} as {"app.name"}."""
    if not isinstance(by_app, dict):
        return set()
    return {f"{app}.{name}" for app, names in by_app.items() for name in names or ()}


def is_ready(revision: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("state") == "CONDITION_SUCCEEDED"
        for c in revision.get("conditions") or []
    )


def serving(service: dict[str, Any]) -> str:
    """The revision with all the traffic: the pinned one, a REVISION target at 100%, else the
    latest ready one."""
    pin = pinned_revision(service)
    if pin:
        return pin
    for t in service.get("traffic") or []:
        if t.get("revision") and int(t.get("percent") or 0) == 100:
            return str(t["revision"])
    return ce.short(service.get("latestReadyRevision"))


def choose(
    service: dict[str, Any], revisions: list[dict[str, Any]], *, to: str | None, tenant: str
) -> dict[str, Any]:
    """The revision to roll back to: ``to`` (it must exist and be ready), else the newest
    ready revision older than the service's latest ready one."""
    ready = [r for r in revisions if is_ready(r)]
    names = [ce.short(r.get("name")) for r in ready]
    if to is not None:
        for r in revisions:
            if ce.short(r.get("name")) == to:
                if not is_ready(r):
                    raise DeployError(
                        f"revision {to} is not ready (it never served): choose a ready one: "
                        + ", ".join(names)
                    )
                return r
        raise DeployError(
            f"revision {to} is not a revision of service {ce.short(service.get('name'))}: "
            "choose one of " + (", ".join(names) or "(none is ready)")
        )
    latest = ce.short(service.get("latestReadyRevision"))
    if latest in names:
        older = names[names.index(latest) + 1 :]
        if older:
            return ready[names.index(older[0])]
    raise DeployError(
        f"no ready revision older than {latest or 'the latest'} to roll back to "
        f"(`djdeploy status --tenant {tenant}` shows what serves)"
    )


def pinned_secrets(revision: dict[str, Any]) -> list[tuple[str, str]]:
    """The (secret, version) pairs of the deployment's project the revision's containers read
    by number: a version pinned at deploy, which a rotation may since have disabled ("latest"
    is resolved at each start; a secret of another project, a full path, is not ours to read)."""
    pinned = set()
    for c in revision.get("containers") or []:
        for env in c.get("env") or []:
            ref = (env.get("valueSource") or {}).get("secretKeyRef") or {}
            secret, version = str(ref.get("secret", "")), str(ref.get("version", ""))
            if secret and "/" not in secret and version.isdigit():
                pinned.add((secret, version))
    return sorted(pinned)


def unreadable_secret(
    pinned: list[tuple[str, str]], states: Callable[[str], dict[str, str]], *, revision: str
) -> DeployError | None:
    """Why ``revision`` cannot start again: a secret version it reads by number is no longer
    enabled (``states``: a secret's version number -> state), or None. Cloud Run reads them at
    each instance start, so traffic moved there would find no instance; --force cannot help."""
    for secret, version in pinned:
        state = states(secret).get(version, "DESTROYED")
        if state != "ENABLED":
            return DeployError(
                f"revision {revision} reads version {version} of secret {secret}, which is "
                f"{state} (a `djdeploy secrets rotate` disables the database password's older "
                "versions): it cannot start; roll back to a revision deployed since, or choose "
                "one with --to"
            )
    return None


def check_migrations(migrations: Migrations, *, revision: str, image: str) -> tuple[str, ...]:
    """The applied migrations ``image`` does not know (sorted); RollbackRefused when a record
    is missing, since then nobody can tell."""
    applied = migrations.applied()
    if applied is None:
        raise RollbackRefused(
            f"cannot tell which migrations the database has applied (no migrate record in the "
            f"media bucket's {RECORD_PREFIX})",
            fix=f"add --force to roll back to {revision} anyway",
        )
    known = migrations.known(image)
    if known is None:
        raise RollbackRefused(
            f"cannot tell which migrations revision {revision} knows (no migrate record for its "
            f"image {image})",
            fix="add --force to roll back anyway",
        )
    return tuple(sorted(applied[1] - known[1]))


def refusal(unknown: tuple[str, ...], *, revision: str, tenant: str) -> RollbackRefused:
    named = ", ".join(unknown[:NAMED])
    more = f" and {len(unknown) - NAMED} more" if len(unknown) > NAMED else ""
    app = unknown[0].split(".", 1)[0]
    return RollbackRefused(
        f"revision {revision} does not know {len(unknown)} migration(s) the database has "
        f"applied: {named}{more}",
        fix=f"unapply them first (`djdeploy manage --tenant {tenant} -- migrate {app} <the "
        f"last migration {revision} knows>`), or add --force",
    )


def pin_body(service: dict[str, Any], revision: str | None) -> dict[str, Any]:
    """The live service with its traffic pinned to ``revision`` (None: unpinned), to be sent
    back with its etag: a concurrent change makes the write fail, never lost."""
    body = {k: v for k, v in service.items() if k not in ("annotations", "traffic")}
    annotations = {
        k: v for k, v in (service.get("annotations") or {}).items() if k != PIN_ANNOTATION
    }
    spec = pin_spec(revision)
    body["traffic"] = spec["traffic"]
    annotations.update(spec.get("annotations", {}))
    if annotations:
        body["annotations"] = annotations
    return body


def is_pinned_to(service: dict[str, Any], revision: str | None) -> bool:
    """The service's pin and traffic are already what a rollback to ``revision`` (None:
    --undo) writes."""
    traffic = service.get("traffic") or []
    if revision is None:
        return pinned_revision(service) is None and [t.get("type") for t in traffic] == [
            LATEST_TRAFFIC
        ]
    return pinned_revision(service) == revision and [
        (t.get("revision"), int(t.get("percent") or 0)) for t in traffic
    ] == [(revision, 100)]


def settled(service: dict[str, Any]) -> bool:
    return not service.get("reconciling") and service.get("generation") == service.get(
        "observedGeneration"
    )
