"""Memorystore for Redis v1 instances through the discovery client (google-api-python-client,
whose static discovery document ``redis.v1.json`` ships with it).

Instances live in a region (``projects/P/locations/R/instances/ID``, ours in the deployment's
region). Create, patch and delete answer a google.longrunning Operation, which no caller waits
on: the step reads the instance's ``state`` (CREATING, READY, UPDATING, DELETING, ...) again.
A patch sends only the fields named in ``updateMask``. With AUTH on, ``getAuthString`` is the
one call that reveals the instance's AUTH string (``get`` never shows it): it is a Secret from
the moment it is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from deployer.gcp import deletes
from deployer.gcp.context import Context, execute
from deployer.secret import Secret


def url(instance: Mapping[str, Any] | None) -> str | None:
    """Where clients reach an instance (``redis://HOST:PORT/0``, database 0; no AUTH string:
    what plan and status show), or None while it has no endpoint yet (absent, CREATING)."""
    if not instance or not instance.get("host") or instance.get("state") in ("CREATING", None):
        return None
    return f"redis://{instance['host']}:{instance.get('port') or 6379}/0"


def broker_url(instance: Mapping[str, Any] | None, auth: Secret | None) -> Secret | None:
    """The URL the app is handed: :func:`url` with the AUTH string as its password
    (``redis://:AUTH@HOST:PORT/0``, as redis-py and Celery read it), or None (no endpoint)."""
    plain = url(instance)
    if plain is None:
        return None
    if auth is None:
        return Secret(plain)
    return Secret(plain.replace("redis://", f"redis://:{quote(auth.reveal(), safe='')}@", 1))


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
        return self.cloud.read(
            execute(self._instances().get(name=self.instance_name(instance_id))),
            key=("redis.instance", instance_id),
        )

    def get_auth_string(self, instance_id: str) -> Secret | None:
        """The instance's AUTH string, or None (AUTH off: the answer is empty; or absent)."""
        request = self._instances().getAuthString(name=self.instance_name(instance_id))
        found = self.cloud.read(execute(request), key=("redis.authString", instance_id))
        value = (found or {}).get("authString")
        return Secret(value) if value else None

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
        name = self.instance_name(instance_id)
        started = self.cloud.read(execute(self._instances().delete(name=name)))
        if started is None:
            return False
        reason = deletes.longrunning_reason(self.cloud, self._operations(), started)
        deletes.started("Memorystore for Redis", f"instance {instance_id}", reason)
        return True

    def _operations(self) -> Any:
        return self.cloud.clients.discovery("redis", "v1").projects().locations().operations()
