"""The Redis broker of ``[worker] broker = "redis"`` (docs/worker.md): a Memorystore for Redis
instance ``<tenant>-<app>-redis`` in the deployment's region, authorized on the network the
service, the jobs and the worker reach over Direct VPC egress (``Config.egress``).

Create and patch are long operations (minutes on Google): apply starts one and returns, and the
step WAITs while the instance is CREATING or UPDATING. Its size (``memorySizeGb``), AUTH
(``authEnabled``: ``[worker] redis_auth``, on by default; an instance made without it is
patched) and labels are patched in place; its tier and network cannot change (Google: "It is
not possible to upgrade from Basic Tier to Standard Tier or the other way around"), so a change
of either is refused with the fix. Once READY, its ``host``, ``port`` and AUTH string make the
URL the redis-url step keeps in a secret (steps/redis_url.py), the app's CELERY_BROKER_URL and
REDIS_URL.

destroy deletes it with the rest, without --delete-data: a broker holds queued task messages,
which djdeploy does not count as the app's data (the worker is deleted before it), and a Basic
instance keeps nothing on disk anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from deployer.config.schema import REDIS_TIERS
from deployer.errors import Conflict
from deployer.errors import NotOurs as NotOursError
from deployer.gcp.redis import url
from deployer.steps.base import Action, Broken, Change, NotOurs, Operation, field_changes
from deployer.steps.labelled import kept, not_managed, not_ours_message

if TYPE_CHECKING:
    from deployer.config import Config, WorkerConfig
    from deployer.gcp.cloud import Cloud

#: states in which the instance is changing by itself: look again later
_BUSY = {"CREATING": "creating", "UPDATING": "updating", "DELETING": "being deleted"}
#: what cannot change once created (the step refuses, naming the fix)
_FIXED = ("tier", "authorizedNetwork", "connectMode")


class OnRedisInstance:
    """The Memorystore instance a step looks after: its name, and the resource it reports."""

    config: Config

    @property
    def instance(self) -> str:
        return self.config.names.redis_instance

    @property
    def resource(self) -> str:
        return f"redis instance {self.instance}"


@dataclass(frozen=True)
class RedisInstance(OnRedisInstance, Operation):
    config: Config
    name: str = "redis"
    needs: tuple[str, ...] = ("apis",)
    EXPECT: ClassVar[Mapping[Action, str]] = {
        Action.CREATE: "redis.instance.create",
        Action.UPDATE: "redis.instance.update",
    }

    @property
    def worker(self) -> WorkerConfig:
        assert self.config.worker is not None  # build_steps adds the step only when configured
        return self.config.worker

    def desired(self) -> dict[str, Any]:
        return {
            "tier": REDIS_TIERS[self.worker.redis_tier],
            "memorySizeGb": self.worker.redis_memory_gb,
            "authorizedNetwork": self.config.redis_network,
            "connectMode": "DIRECT_PEERING",
            "authEnabled": self.worker.redis_auth,
            "labels": dict(self.config.names.labels),
        }

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        return cloud.redis.get_instance(self.instance)

    def diff(self, observed: dict[str, Any] | None) -> Change:
        if observed is None:
            return self.create(f"redis instance {self.instance} missing")
        info = {
            "state": str(observed.get("state") or ""),
            "tier": str(observed.get("tier") or ""),
            "memory": f"{observed.get('memorySizeGb')} GB",
            "auth": "on" if observed.get("authEnabled") else "off",
        }
        found = url(observed)
        if found:
            info["broker_url"] = found
        if not self.config.names.owns(observed.get("labels")):
            return self.refuse(
                NotOurs(_not_ours(self.instance)),
                not_managed(self.resource),
                info=info,
            )
        state = str(observed.get("state") or "")
        if state in _BUSY:
            return self.wait(f"redis instance {self.instance} {_BUSY[state]}", info=info)
        desired = self.desired()
        fields = field_changes(desired, observed)
        fixed = [f for f in fields if f.path in _FIXED]
        if fixed:
            what = ", ".join(f"{f.path} {f.old} -> {f.new}" for f in fixed)
            return self.refuse(
                Broken(
                    f"redis instance {self.instance}: {what} cannot change on an existing "
                    "instance: set it back, or delete the instance (the worker's queued tasks "
                    "are lost) and run up again"
                ),
                "tier or network differs",
                info=info,
            )
        if fields:
            return self.update(f"redis instance {self.instance} differs", fields, info=info)
        if state != "READY" or not found:
            return self.wait(f"redis instance {self.instance} is {state or 'not ready'}", info=info)
        return self.noop(
            f"redis instance {self.instance} ({info['tier']}, {info['memory']}) ready at {found}",
            info=info,
        )

    def apply(self, cloud: Cloud, change: Change) -> None:
        body = self.desired()
        if change.action is Action.CREATE:
            try:
                cloud.redis.create_instance(self.instance, body)
                return
            except Conflict:
                current = cloud.redis.get_instance(self.instance)
                if current is None or not self.config.names.owns(current.get("labels")):
                    raise NotOursError(_not_ours(self.instance)) from None
                change = self.diff(current)  # ours (an earlier run made it): bring it to spec
        fields = sorted({f.path.split(".", 1)[0] for f in change.fields})
        if fields:
            cloud.redis.patch_instance(self.instance, body, fields)

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        current = cloud.redis.get_instance(self.instance)
        if current is None:
            return self.noop(f"redis instance {self.instance} is gone")
        if not self.config.names.owns(current.get("labels")):
            return self.noop(kept(self.resource))
        if current.get("state") == "DELETING":
            return self.deleted("deletion in progress")
        cloud.redis.delete_instance(self.instance)
        return self.deleted(f"deleting redis instance {self.instance} (queued tasks are lost)")


def _not_ours(instance: str) -> str:
    return not_ours_message(f"Memorystore for Redis instance {instance}")
