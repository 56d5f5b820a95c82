"""Memorystore for Redis v1 instances through the discovery client (google-api-python-client,
whose static discovery document ``redis.v1.json`` ships with it).

Instances live in a region (``projects/P/locations/R/instances/ID``, ours in the deployment's
region). Create, patch and delete answer a google.longrunning Operation, which no caller waits
on: the step reads the instance's ``state`` (CREATING, READY, UPDATING, DELETING, ...) again.
A patch sends only the fields named in ``updateMask``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from deployer.gcp.context import Context, execute


def url(instance: Mapping[str, Any] | None) -> str | None:
    """The broker URL of an instance clients can use (``redis://HOST:PORT/0``, database 0), or
    None while it has no endpoint yet (absent, CREATING)."""
    if not instance or not instance.get("host") or instance.get("state") in ("CREATING", None):
        return None
    return f"redis://{instance['host']}:{instance.get('port') or 6379}/0"


class RedisApi:
    def __init__(self, cloud: Context) -> None:
        self.cloud = cloud

    def _instances(self) -> Any:
        return self.cloud.clients.discovery("redis", "v1").projects().locations().instances()

    @property
    def parent(self) -> str:
        return f"projects/{self.cloud.project}/locations/{self.cloud.region}"

    def instance_name(self, instance_id: str) -> str:
        return f"{self.parent}/instances/{instance_id}"

    def get_instance(self, instance_id: str) -> dict[str, Any] | None:
        """The instance, or None (absent, or the API not enabled yet); a read the steps'
        first observations share (the service, the jobs and the worker read its host)."""
        request = self._instances().get(name=self.instance_name(instance_id))
        return self.cloud.read(execute(request), key=("redis.instance", instance_id))

    def create_instance(self, instance_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Start creating (idempotent by name: 409 raises errors.Conflict)."""
        request = self._instances().create(parent=self.parent, instanceId=instance_id, body=body)
        return self.cloud.call(execute(request))

    def patch_instance(
        self, instance_id: str, body: dict[str, Any], fields: Sequence[str]
    ) -> dict[str, Any]:
        """Set ``fields`` (top-level names, camelCase) from ``body``."""
        request = self._instances().patch(
            name=self.instance_name(instance_id), body=body, updateMask=",".join(sorted(fields))
        )
        return self.cloud.call(execute(request))

    def delete_instance(self, instance_id: str) -> bool:
        """Start deleting; True when it was there, False when already gone."""
        done = self.cloud.read(
            execute(self._instances().delete(name=self.instance_name(instance_id)))
        )
        return done is not None
