"""Least-privilege IAM bindings of the two service accounts (docs/iam.md says why each).

- IamRuntime ("iam-runtime"): the runtime SA may read each secret it mounts
  (roles/secretmanager.secretAccessor on each secret), read and write media objects
  (roles/storage.objectAdmin + roles/storage.legacyBucketReader on the media bucket: GCS FUSE
  lists and gets the bucket), and connect to Cloud SQL (roles/cloudsql.client on the project:
  Cloud SQL has no instance-level IAM).
- IamScheduler ("iam-scheduler", with [[cron]] entries): the scheduler SA may run each
  scheduled command's job (roles/run.invoker on that job only: it holds run.jobs.run, not
  run.jobs.runWithOverrides, so the account can start those commands and no other).
- IamDeployer ("iam-deployer", with [ci]): the deploy-on-push trigger's account holds on the
  project the roles `djdeploy up` needs (steps/ci.py ``deployer_roles``: those of the deploying
  identity in docs/real-google-cloud.md, the configuration's, and roles/logging.logWriter for
  its build's own logs).
- IamBuild ("iam-build"): the build SA may push images (roles/artifactregistry.writer on the
  repository), write build logs (roles/logging.logWriter on the project) and read the uploaded
  source (roles/storage.objectViewer on the staging bucket).

Every policy is changed by the one read-modify-write (gcp/policy.py): only missing members are
added, nothing else in the policy is touched. A binding naming a service account IAM does not
see yet (400 "Service account ... does not exist", for a minute or more after creation) is
retried by that same read-modify-write with backoff (``sa_not_visible`` is passed to it as one
more reason to redo it): one retry loop, at most PROPAGATION_ATTEMPTS read-modify-writes, whose
get and set each ride out transient errors on their own (the bound is in gcp/policy.py).

destroy removes our members from every policy still there (the project's, and those of kept
secrets and buckets), including the ``deleted:serviceAccount:...`` form a binding takes once
its account is deleted; bindings on deleted resources vanish with them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deployer.errors import CloudError, InvalidArgument, NotFound, means_absent
from deployer.gcp import policy as iam_policy
from deployer.steps.base import Change, FieldChange, Operation
from deployer.steps.ci import GRANTED_ROLES, deployer_roles

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud

Policy = dict[str, Any]

#: read-modify-writes of one policy at most, while a new service account propagates or
#: concurrent writers conflict (backoff 0.5 s doubling to 16 s: about two minutes)
PROPAGATION_ATTEMPTS = 12


def sa_not_visible(exc: BaseException) -> bool:
    """IAM refuses a binding naming a service account it does not see yet."""
    return (
        isinstance(exc, InvalidArgument)
        and "Service account" in str(exc)
        and "does not exist" in str(exc)
    )


@dataclass(frozen=True)
class Target:
    """One resource's policy, the members we want in it, and those of ours we granted there
    and no longer want (revoked in the same read-modify-write)."""

    key: str  # "project", "secret/<id>", "bucket/<name>", "repository/<id>"
    wanted: Mapping[str, frozenset[str]]
    get: Callable[[Cloud], Policy] = field(compare=False)
    set: Callable[[Cloud, Policy], Policy] = field(compare=False)
    unwanted: Mapping[str, frozenset[str]] = field(default_factory=dict)


def _ours(t: Target) -> dict[str, set[str]]:
    """Every (role, member) of ours ``t`` names, wanted or not: what destroy removes."""
    out = {r: set(m) for r, m in t.unwanted.items()}
    for role, members in t.wanted.items():
        out.setdefault(role, set()).update(members)
    return out


def _project(
    wanted: Mapping[str, frozenset[str]], unwanted: Mapping[str, frozenset[str]] | None = None
) -> Target:
    return Target(
        "project",
        wanted,
        lambda c: c.projects.get_iam_policy(),
        lambda c, p: c.projects.set_iam_policy(p),
        unwanted or {},
    )


def _bucket(name: str, wanted: Mapping[str, frozenset[str]]) -> Target:
    return Target(
        f"bucket/{name}",
        wanted,
        lambda c: c.storage.get_iam_policy(name),
        lambda c, p: c.storage.set_iam_policy(name, p),
    )


def _secret(secret_id: str, wanted: Mapping[str, frozenset[str]]) -> Target:
    return Target(
        f"secret/{secret_id}",
        wanted,
        lambda c: c.secrets.get_iam_policy(secret_id),
        lambda c, p: c.secrets.set_iam_policy(secret_id, p),
    )


def _repository(repo_id: str, wanted: Mapping[str, frozenset[str]]) -> Target:
    return Target(
        f"repository/{repo_id}",
        wanted,
        lambda c: c.registry.get_iam_policy(repo_id),
        lambda c, p: c.registry.set_iam_policy(repo_id, p),
    )


class _Bindings(Operation):
    config: Config
    name: str
    # not WRITES: a binding is in the policy when the call returns, but a fresh one is only
    # honoured once it has propagated (a job run at once fails on its secrets, and runs twice)

    def targets(self) -> list[Target]:
        raise NotImplementedError

    @property
    def resource(self) -> str:
        return f"IAM bindings of {self.member}"

    @property
    def member(self) -> str:
        raise NotImplementedError

    def _lock_key(self, target: Target) -> str:
        return f"{self.config.project}/{target.key}"

    # -- observe / diff --------------------------------------------------------------------

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        """{"policies": {target key: policy, or None when the resource is absent}}; None when
        no binding of ours is present anywhere (what destroy waits for)."""
        policies: dict[str, Policy | None] = {}
        for t in self.targets():
            try:
                policies[t.key] = t.get(cloud)
            except CloudError as exc:
                if not means_absent(exc):
                    raise
                policies[t.key] = None
        present = any(
            iam_policy.present_bindings(p, _ours(t))
            for t in self.targets()
            if (p := policies.get(t.key)) is not None
        )
        if not present:
            return None
        return {"policies": policies}

    def missing(self, observed: dict[str, Any] | None) -> list[tuple[str, str, str]]:
        """(resource key, role, member) of every wanted binding not granted."""
        policies = (observed or {}).get("policies", {})
        out = []
        for t in self.targets():
            wanted = {r: set(m) for r, m in t.wanted.items()}
            for role, members in sorted(
                iam_policy.missing_bindings(policies.get(t.key), wanted).items()
            ):
                for m in sorted(members):
                    out.append((t.key, role, m))
        return out

    def revoked(self, observed: dict[str, Any] | None) -> list[tuple[str, str, str]]:
        """(resource key, role, member) of every binding of ours granted and no longer
        wanted (a smaller configuration, or a role this djdeploy no longer grants)."""
        policies = (observed or {}).get("policies", {})
        return [
            (t.key, role, m)
            for t in self.targets()
            for role, members in sorted(
                iam_policy.present_bindings(
                    policies.get(t.key), {r: set(m) for r, m in t.unwanted.items()}
                ).items()
            )
            for m in sorted(members)
        ]

    def diff(self, observed: dict[str, Any] | None) -> Change:
        missing, revoked = self.missing(observed), self.revoked(observed)
        total = sum(len(m) for t in self.targets() for m in t.wanted.values())
        if not missing and not revoked:
            return self.noop(f"{total} bindings present on {len(self.targets())} resources")
        absent = [k for k, p in ((observed or {}).get("policies") or {}).items() if p is None]
        reasons = [f"{len(missing)} of {total} bindings missing"] * bool(missing)
        reasons += [f"{len(revoked)} no longer wanted"] * bool(revoked)
        reason = "; ".join(reasons)
        if absent:
            reason += f" (not found: {', '.join(absent)})"
        fields = [FieldChange(f"{key}:{role}", None, member) for key, role, member in missing]
        fields += [FieldChange(f"{key}:{role}", member, None) for key, role, member in revoked]
        return self.update(reason, fields)

    # -- apply / delete --------------------------------------------------------------------

    def apply(self, cloud: Cloud, change: Change) -> None:
        keys = {f.path.split(":", 1)[0] for f in change.fields}
        for t in self.targets():
            if t.key in keys:
                self._ensure(cloud, t)

    def _ensure(self, cloud: Cloud, t: Target) -> None:
        iam_policy.ensure_bindings(
            cloud,
            get=lambda: t.get(cloud),
            set=lambda p: t.set(cloud, p),
            wanted={r: set(m) for r, m in t.wanted.items()},
            unwanted={r: set(m) for r, m in t.unwanted.items()},
            key=self._lock_key(t),
            retry_on=(sa_not_visible,),
            attempts=PROPAGATION_ATTEMPTS,
        )

    def _remove(self, cloud: Cloud, t: Target) -> bool:
        return iam_policy.remove_bindings(
            cloud,
            get=lambda: t.get(cloud),
            set=lambda p: t.set(cloud, p),
            unwanted=_ours(t),
            key=self._lock_key(t),
        )

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        removed = []
        for t in self.targets():
            try:
                changed = self._remove(cloud, t)
            except NotFound:
                continue  # the resource is gone, and its policy with it
            if changed:
                removed.append(t.key)
        if not removed:
            return self.noop("no binding of ours left")
        return self.deleted(f"removed our bindings from {', '.join(removed)}")


def _job(job_id: str, wanted: Mapping[str, frozenset[str]]) -> Target:
    return Target(
        f"job/{job_id}",
        wanted,
        lambda c: c.run.get_iam_policy(c.run.job_name(job_id)),
        lambda c, p: c.run.set_iam_policy(c.run.job_name(job_id), p),
    )


def _wanted(*pairs: tuple[str, str]) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for role, member in pairs:
        out.setdefault(role, set()).add(member)
    return {r: frozenset(m) for r, m in out.items()}


@dataclass(frozen=True)
class IamRuntime(_Bindings):
    config: Config
    name: str = "iam-runtime"
    needs: Sequence[str] = ("service-accounts", "secrets", "bucket")

    @property
    def member(self) -> str:
        return f"serviceAccount:{self.config.names.runtime_sa_email}"

    def secret_ids(self) -> list[str]:
        n = self.config.names
        ids = [n.secret_db_password, n.secret_key, n.secret_superuser_password]
        ids += [ref.secret for ref in self.config.app_secret_env.values()]
        if self.config.redis_broker:
            ids.append(n.redis_url_secret)
        return list(dict.fromkeys(ids))

    def targets(self) -> list[Target]:
        m = self.member
        out = [_project(_wanted(("roles/cloudsql.client", m)))]
        out.append(
            _bucket(
                self.config.names.bucket,
                _wanted(("roles/storage.objectAdmin", m), ("roles/storage.legacyBucketReader", m)),
            )
        )
        out += [
            _secret(s, _wanted(("roles/secretmanager.secretAccessor", m)))
            for s in self.secret_ids()
        ]
        return out


@dataclass(frozen=True)
class IamBuild(_Bindings):
    config: Config
    name: str = "iam-build"
    needs: Sequence[str] = ("service-accounts", "registry", "sources-bucket")

    @property
    def member(self) -> str:
        return f"serviceAccount:{self.config.names.build_sa_email}"

    def targets(self) -> list[Target]:
        m = self.member
        return [
            _project(_wanted(("roles/logging.logWriter", m))),
            _bucket(self.config.names.staging_bucket, _wanted(("roles/storage.objectViewer", m))),
            _repository(self.config.names.registry, _wanted(("roles/artifactregistry.writer", m))),
        ]


@dataclass(frozen=True)
class IamScheduler(_Bindings):
    config: Config
    name: str = "iam-scheduler"
    needs: Sequence[str] = ("service-accounts",)  # and each cron-job step (build_steps)

    @property
    def member(self) -> str:
        return f"serviceAccount:{self.config.names.scheduler_sa_email}"

    def targets(self) -> list[Target]:
        m = self.member
        return [
            _job(self.config.names.cron_job(e.name), _wanted(("roles/run.invoker", m)))
            for e in self.config.cron
        ]


@dataclass(frozen=True)
class IamDeployer(_Bindings):
    """Converges: the roles djdeploy grants this account (``ci.GRANTED_ROLES``) that the
    configuration no longer needs are revoked; a role it never grants (one added by hand) and
    every other member are left alone. build_steps makes it need the retiring steps, which use
    a feature's role when `up` runs on push, so a role goes only once they are done."""

    config: Config
    name: str = "iam-deployer"
    needs: Sequence[str] = ("service-accounts",)

    @property
    def member(self) -> str:
        return f"serviceAccount:{self.config.names.deployer_sa_email}"

    def targets(self) -> list[Target]:
        wanted = deployer_roles(self.config)
        gone = [role for role in GRANTED_ROLES if role not in wanted]
        return [
            _project(
                _wanted(*((role, self.member) for role in wanted)),
                _wanted(*((role, self.member) for role in gone)),
            )
        ]
