"""Deploy on push ([ci], docs/ci.md): the Cloud Build trigger (step "ci") whose build runs
`djdeploy up` for the tenant as its deployer service account, and the roles that account needs.

The deployer account is the tenant's own (``Names.deployer_sa_id``): the service-accounts step
makes it, iam-deployer grants it the roles below on the project, and this step makes the
trigger. The trigger's create needs only its account to exist (the roles matter to its builds),
and it is the one call that finds a repository not connected to Cloud Build (no read tells), so
`up` makes it right after service-accounts: that refusal shows in the run's first seconds, while
every other step goes on. build_steps orders it after every other step all the same
(``deleted_before``), so destroy, which walks the graph backwards, deletes it first: no push
starts a deploy of a half-destroyed tenant.

`up` itself runs in the trigger's build as the deployer account. On a run that changes nothing
this step reads the trigger (``cloudbuild.builds.get``) and its newest build
(``cloudbuild.builds.list``), both in roles/cloudbuild.builds.editor, and writes nothing.

Triggers have no labels: ours carry the tag TAG (a trigger under our name without it is someone
else's, refused and never changed), as the builds it starts do.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from deployer.config.load import find_config_file
from deployer.errors import CloudError, Conflict, DeployError
from deployer.steps import container_env as ce
from deployer.steps.base import (
    WRITES,
    Action,
    Change,
    FieldChange,
    NotOurs,
    Operation,
    field_changes,
)

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud

#: the roles the deploying identity needs on the project (docs/real-google-cloud.md explains
#: each; tests/test_ci.py keeps that table and this list the same)
DEPLOYER_ROLES: tuple[str, ...] = (
    "roles/serviceusage.serviceUsageAdmin",
    "roles/run.admin",
    "roles/cloudsql.admin",
    "roles/secretmanager.admin",
    "roles/storage.admin",
    "roles/artifactregistry.admin",
    "roles/cloudbuild.builds.editor",
    "roles/iam.serviceAccountAdmin",
    "roles/iam.serviceAccountUser",
    "roles/resourcemanager.projectIamAdmin",
)
SCHEDULER_ROLE = "roles/cloudscheduler.admin"  # with [[cron]] entries
MONITORING_ROLE = "roles/monitoring.editor"  # with [monitoring] enabled
REDIS_ROLE = "roles/redis.admin"  # with [worker] broker = "redis"
#: the documented roles no default deployment needs (`djdeploy logs` reads with logging.viewer)
OPTIONAL_ROLES: tuple[str, ...] = (
    SCHEDULER_ROLE,
    "roles/logging.viewer",
    MONITORING_ROLE,
    REDIS_ROLE,
)
#: what a Cloud Build trigger's build needs besides: writing its own logs
LOG_WRITER = "roles/logging.logWriter"
#: every project role iam-deployer grants under some configuration, and those an earlier
#: djdeploy granted: what it revokes when no longer wanted (a role dropped from the lists
#: above stays here, so that an upgrade takes it away)
GRANTED_ROLES: tuple[str, ...] = (
    *DEPLOYER_ROLES,
    SCHEDULER_ROLE,
    MONITORING_ROLE,
    REDIS_ROLE,
    LOG_WRITER,
)
#: on the trigger and its builds: djdeploy's (a trigger under our name without it is not ours)
TAG = "djdeploy"
BUILD_IMAGE = "python:3.12-slim"


def config_roles(config: Config) -> tuple[str, ...]:
    """The roles beyond DEPLOYER_ROLES that ``config`` needs: Cloud Scheduler's for [[cron]]
    entries, Cloud Monitoring's for [monitoring], Memorystore's for a Redis broker."""
    return (
        (SCHEDULER_ROLE,) * bool(config.cron)
        + (MONITORING_ROLE,) * config.monitoring.enabled
        + (REDIS_ROLE,) * config.redis_broker
    )


def deployer_roles(config: Config) -> tuple[str, ...]:
    """The project roles of the trigger's deployer account (iam-deployer grants them)."""
    return (*DEPLOYER_ROLES, *config_roles(config), LOG_WRITER)


@functools.cache
def installed_version() -> str:
    """The djdeploy the trigger's build installs: this one (the distribution's version, which
    deployer.__version__ repeats; that module is above the steps)."""
    return importlib.metadata.version("djdeploy")


def up_command(tenant: str, project: str, region: str, *, config: str | None = None) -> str:
    flags = {"--tenant": tenant, "--project": project, "--region": region}
    if config is not None:
        flags["--config"] = config
    return shlex.join(["djdeploy", "up", *(x for pair in flags.items() for x in pair)])


def config_in_checkout(config_file: Path | None) -> str | None:
    """The --config a push's `djdeploy up`, run in the repository's root, needs to read the
    file this deployment was read from: its path from that root, or None when the build finds
    it by itself (the root's djdeploy.toml, or pyproject.toml with [tool.djdeploy]) or when
    the file is in no git repository (nothing to point at)."""
    if config_file is None:
        return None
    file = config_file.resolve()
    root = next((d for d in file.parents if (d / ".git").exists()), None)
    if root is None or find_config_file(root) == file:
        return None
    return file.relative_to(root).as_posix()


def connect_url(config: Config) -> str:
    return (
        f"https://console.cloud.google.com/cloud-build/triggers;region={config.region}"
        f"/connect?project={config.project}"
    )


def trigger_body(config: Config, *, version: str) -> dict[str, Any]:
    """The trigger: on a push to the branch, one step in a Python image installs djdeploy
    ``version`` and runs `djdeploy up` as the deployer account, logging to Cloud Logging only
    (what a build with its own service account must choose)."""
    assert config.ci is not None
    ci, names = config.ci, config.names
    owner, repo = ci.github.split("/")
    tags = [TAG, f"djdeploy-tenant-{config.tenant}"]
    up = up_command(
        config.tenant,
        config.project,
        config.region,
        config=config_in_checkout(config.config_file),
    )
    return {
        "name": names.ci_trigger,
        "description": f"djdeploy: deploys tenant {config.tenant} on every push to {ci.branch}",
        "tags": tags,
        "github": {"owner": owner, "name": repo, "push": {"branch": f"^{re.escape(ci.branch)}$"}},
        "serviceAccount": f"projects/{config.project}/serviceAccounts/{names.deployer_sa_email}",
        "build": {
            "steps": [
                {
                    "name": BUILD_IMAGE,
                    "entrypoint": "bash",
                    "args": ["-c", f"pip install --quiet djdeploy=={version} && {up}"],
                }
            ],
            "timeout": "3600s",
            "options": {"logging": "CLOUD_LOGGING_ONLY"},
            "tags": tags,
        },
    }


def is_ours(trigger: dict[str, Any]) -> bool:
    return TAG in (trigger.get("tags") or [])


def not_ours(name: str) -> str:
    return (
        f"Cloud Build trigger {name} exists without the tag {TAG!r}: not djdeploy's; delete it "
        "or remove [ci]"
    )


@dataclass(frozen=True)
class CiTrigger(Operation):
    EXPECT: ClassVar[Mapping[Action, str]] = WRITES  # takes effect when the call returns
    config: Config
    name: str = "ci"
    needs: tuple[str, ...] = ("service-accounts",)  # the deployer account the trigger names
    #: engine.deleted_before: build_steps names every other step (destroy deletes it first)
    deleted_before: tuple[str, ...] = ()

    @property
    def trigger(self) -> str:
        return self.config.names.ci_trigger

    @property
    def resource(self) -> str:
        assert self.config.ci is not None
        return (
            f"Cloud Build trigger {self.trigger} ({self.config.ci.github} {self.config.ci.branch})"
        )

    def desired(self) -> dict[str, Any]:
        return trigger_body(self.config, version=installed_version())

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        """The trigger and its newest build (None: no trigger)."""
        trigger = cloud.build.get_trigger(self.trigger)
        if trigger is None:
            return None
        builds = cloud.build.list_builds(f'trigger_id="{trigger["id"]}"', limit=1)
        return {"trigger": trigger, "last_build": builds[0] if builds else None}

    def diff(self, observed: dict[str, Any] | None) -> Change:
        assert self.config.ci is not None
        ci = self.config.ci
        if observed is None:
            # no read tells whether the repository is connected (docs/ci.md): plan says what
            # the create needs, and up finds out at its start
            return self.create(
                f"no trigger: a push to {ci.branch} of {ci.github} deploys nothing (its create "
                f"needs {ci.github} connected to Cloud Build, once, in the console)",
                [FieldChange(self.trigger, None, f"{ci.github} {ci.branch}")],
            )
        trigger = observed["trigger"]
        if not is_ours(trigger):
            return self.refuse(NotOurs(not_ours(self.trigger)), f"{self.trigger} is not ours")
        info = {"trigger": self.trigger, "repository": ci.github, "branch": ci.branch}
        last = observed["last_build"]
        if last is not None:
            when = last.get("finishTime") or last.get("createTime") or ""
            info["last build"] = f"{last.get('status', '?')} {when} ({last.get('id')})".strip()
        want = self.desired()
        fields = field_changes(want, ce.project(want, trigger))
        if fields:
            return self.update(f"trigger {self.trigger} differs", fields, info=info)
        return self.noop(f"trigger {self.trigger} exists and matches", info=info)

    def apply(self, cloud: Cloud, change: Change) -> None:
        want = self.desired()
        try:
            if change.action is Action.CREATE:
                # a 409: a retried create, or a race; the next observe adopts or refuses it
                with contextlib.suppress(Conflict):
                    cloud.build.create_trigger(want)
                return
            found = cloud.build.get_trigger(self.trigger)
            if found is not None and is_ours(found):
                cloud.build.replace_trigger(found["id"], want)
        except CloudError as exc:
            if exc.status == "FAILED_PRECONDITION" and "epository" in str(exc):
                raise DeployError(self.not_connected()) from None
            raise

    def not_connected(self) -> str:
        assert self.config.ci is not None
        return (
            f"{self.config.ci.github} is not connected to Cloud Build in project "
            f"{self.config.project}: connect it once in the console ({connect_url(self.config)}), "
            "then run up again"
        )

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        """First of destroy: once it is gone, no push starts a deploy."""
        found = cloud.build.get_trigger(self.trigger)
        if found is None:
            return self.noop(f"no trigger {self.trigger}")
        if not is_ours(found):
            return self.noop(f"kept trigger {self.trigger}: not djdeploy's")
        cloud.build.delete_trigger(found["id"])
        return self.deleted(f"deleted trigger {self.trigger}: a push no longer deploys")
