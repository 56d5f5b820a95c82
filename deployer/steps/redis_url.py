"""The Redis broker's URL as a secret: ``<tenant>-<app>-redis-url`` (docs/worker.md).

With AUTH on (``[worker] redis_auth``, the default) clients need the instance's AUTH string,
which Memorystore reveals only through ``getAuthString``. The URL the app is handed,
``redis://:AUTH@HOST:PORT/0``, is therefore a secret: this step keeps it as the newest enabled
version of a labelled Secret Manager secret, and the service, the jobs and the worker read
CELERY_BROKER_URL and REDIS_URL from it, pinned to that version (steps/container_env.py), never
as a plain value. djdeploy never prints it: it is a Secret from the moment it is read.

observe reads the secret, its newest enabled version's payload, the instance (shared with the
redis step) and its AUTH string, and compares the payload with the URL the instance answers
now. A version is added only when they differ (the first one; AUTH turned on or off, a new AUTH
string, a new address), so a no-op ``up`` writes nothing and a run killed after adding one finds
it and adds no other. The service, jobs and worker then move to the new version (plan shows it
as their change). Earlier versions stay enabled: revisions still pinned to one keep starting
until they are replaced, and a dead AUTH string is worth nothing.

destroy (and redis-retired) deletes the secret without --delete-data: it holds nothing but the
address and AUTH string of an instance that goes with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from deployer import errors
from deployer.errors import Conflict, DeployError
from deployer.gcp.redis import broker_url
from deployer.secret import Secret
from deployer.steps.base import WRITES, Action, Change, FieldChange, NotOurs, Operation
from deployer.steps.labelled import not_managed, not_ours_message

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud

FIRST = "created with 1 version (the broker URL)"


def current_url(cloud: Cloud, config: Config) -> tuple[Secret | None, bool]:
    """The URL the instance answers now (None: no endpoint) and whether it has AUTH on (the
    URL then holds its AUTH string)."""
    instance_id = config.names.redis_instance
    instance = cloud.redis.get_instance(instance_id)
    if instance is None:
        return None, False
    auth = cloud.redis.get_auth_string(instance_id) if instance.get("authEnabled") else None
    return broker_url(instance, auth), auth is not None


def delete_secret(cloud: Cloud, config: Config) -> bool:
    """Delete the URL secret when it is ours; whether one was deleted."""
    sid = config.names.redis_url_secret
    found = cloud.secrets.get_secret(sid)
    if found is None or not config.names.owns(found.get("labels")):
        return False
    return cloud.secrets.delete_secret(sid)


@dataclass(frozen=True)
class RedisUrl(Operation):
    EXPECT: ClassVar[Mapping[Action, str]] = WRITES  # takes effect when the call returns
    config: Config
    name: str = "redis-url"
    needs: tuple[str, ...] = ("redis",)

    @property
    def secret(self) -> str:
        return self.config.names.redis_url_secret

    @property
    def resource(self) -> str:
        return f"secret {self.secret}"

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        """None: no secret; else its labels, newest enabled version, and whether that holds
        the instance's URL (None: the instance has no endpoint)."""
        found = cloud.secrets.get_secret(self.secret)
        if found is None:
            return None
        latest = cloud.secrets.latest_version(self.secret)
        url, auth = current_url(cloud, self.config)
        held = cloud.secrets.access(self.secret, latest) if latest and url else None
        return {
            "labels": dict(found.get("labels") or {}),
            "latest": latest,
            "current": None if url is None else held == url,
            "auth": auth,
        }

    def diff(self, observed: dict[str, Any] | None) -> Change:
        sid = self.secret
        if observed is None:
            return self.create(f"secret {sid} missing", [FieldChange(sid, None, FIRST)])
        if not self.config.names.owns(observed["labels"]):
            return self.refuse(NotOurs(_not_ours(sid)), not_managed(self.resource))
        latest = observed["latest"]
        if observed["current"] is None:
            return self.wait(f"redis instance {self.config.names.redis_instance} has no address")
        if not observed["current"]:
            old = f"version {latest}" if latest else None
            return self.update(
                f"secret {sid} does not hold the instance's URL (new AUTH string or address)",
                [FieldChange(f"{sid}.version", old, "a new version")],
            )
        auth = "with its AUTH string" if observed["auth"] else "AUTH off"
        info = {"secret": sid, "version": str(latest), "auth": "on" if observed["auth"] else "off"}
        return self.noop(f"secret {sid} version {latest} holds the broker URL ({auth})", info=info)

    def apply(self, cloud: Cloud, change: Change) -> None:
        url, _ = current_url(cloud, self.config)
        if url is None:
            raise DeployError(
                f"redis instance {self.config.names.redis_instance} has no address yet: run up "
                "again"
            )
        if change.action is Action.CREATE:
            self._ensure_secret(cloud)
        latest = cloud.secrets.latest_version(self.secret)
        if latest and cloud.secrets.access(self.secret, latest) == url:
            return  # an earlier run added it (killed before it could say so)
        cloud.secrets.add_version(self.secret, url)

    def _ensure_secret(self, cloud: Cloud) -> None:
        names = self.config.names
        try:
            cloud.secrets.create_secret(self.secret, dict(names.labels))
        except Conflict:
            found = cloud.secrets.get_secret(self.secret)
            if found is None:
                raise
            if not names.owns(found.get("labels")):
                raise errors.NotOurs(_not_ours(self.secret)) from None

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        if not delete_secret(cloud, self.config):
            return self.noop(f"secret {self.secret} is gone (or not ours: kept)")
        return self.deleted(f"deleted secret {self.secret} (the Redis broker's URL)")


def _not_ours(sid: str) -> str:
    return not_ours_message(f"secret {sid}")
