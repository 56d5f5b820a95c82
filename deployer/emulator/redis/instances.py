"""Memorystore for Redis instances: created, patched and deleted through long operations.

An instance is stored ("redis.instance", keyed by its name
``projects/<id>/locations/<l>/instances/<i>``) in state CREATING as soon as create answers; its
operation completes after latency "redis.instance.create" (scaled), when it becomes READY with
a ``host`` and ``port``. API-only, the host is a private address of its ``reservedIpRange``
(derived from the name: stable). With local execution (``emu.local.redis``) the instance is a
local redis-server and ``host``/``port`` point at it: the completer waits (NotYet) until it
answers PING. A patch sets the fields at once and leaves the instance UPDATING until
"redis.instance.update"; a delete leaves it DELETING until "redis.instance.delete", then
removes it (and stops its server).

AUTH (``authEnabled``, set at create or by a patch) gives the instance an AUTH string, a new
UUID each time AUTH is turned on (Google: "uniquely generated each time that AUTH is enabled"),
stored apart ("redis.authString", same key) because ``get`` never shows it: only
``getAuthString`` does, and answers ``{}`` while AUTH is off. The local redis-server requires it.
"""

from __future__ import annotations

import builtins
import hashlib
import re
import sys
import uuid
from typing import TYPE_CHECKING, Any

from ..errors import AlreadyExists, ApiError, FailedPrecondition, InvalidArgument, NotFound
from ..formats import check_labels, rfc3339
from ..local.redis import HOST, answers
from ..operations import NotYet, completer

if TYPE_CHECKING:
    from ..context import Emulator

INSTANCE_KIND = "redis.instance"
AUTH_KIND = "redis.authString"
TYPE_PREFIX = "type.googleapis.com/google.cloud.redis.v1."
EMPTY_TYPE = "type.googleapis.com/google.protobuf.Empty"
PORT = 6379
DEFAULT_VERSION = "REDIS_7_0"  # the discovery document's "(default)"
TIERS = ("BASIC", "STANDARD_HA")
CONNECT_MODES = ("DIRECT_PEERING", "PRIVATE_SERVICE_ACCESS")
#: what a patch may name (Google's list for instances.patch, and authEnabled: gcloud redis
#: instances update --enable-auth)
MUTABLE = (
    "authEnabled",
    "displayName",
    "labels",
    "memorySizeGb",
    "redisConfigs",
    "replicaCount",
    "readReplicasMode",
    "persistenceConfig",
    "maintenancePolicy",
)
_ID_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?$")
_NETWORK_RE = re.compile(r"^projects/[^/]+/global/networks/[^/]+$")


def _check_memory(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 300:
        raise InvalidArgument("memory_size_gb must be between 1 and 300 (GiB).")
    return value


def _private_range(name: str) -> tuple[str, str]:
    """(reservedIpRange, host): a /29 of 10.0.0.0/8 derived from the name, its first host."""
    h = hashlib.sha256(name.encode()).digest()
    base = f"10.{h[0]}.{h[1]}.{h[2] & 0xF8}"
    return f"{base}/29", f"10.{h[0]}.{h[1]}.{(h[2] & 0xF8) + 3}"


class Instances:
    """A project's instances in one location."""

    def __init__(self, emu: Emulator, project_id: str, location: str) -> None:
        self.emu = emu
        self.store = emu.store
        self.project_id = project_id
        self.location = location

    @property
    def parent(self) -> str:
        return f"projects/{self.project_id}/locations/{self.location}"

    def name(self, instance: str) -> str:
        return f"{self.parent}/instances/{instance}"

    def get(self, instance: str) -> dict[str, Any]:
        found = self.store.get(INSTANCE_KIND, self.name(instance))
        if found is None:
            raise NotFound(f"Resource '{self.name(instance)}' was not found")
        return found

    def list(self) -> list[dict[str, Any]]:
        return [v for _, v in self.store.list(INSTANCE_KIND, self.parent + "/instances/")]

    def auth_string(self, instance: str) -> dict[str, Any]:
        """InstanceAuthString: ``{"authString"}`` with AUTH on, ``{}`` with it off."""
        rec = self.get(instance)
        return dict(self.store.get(AUTH_KIND, rec["name"]) or {})

    def _set_auth(self, name: str, enabled: bool) -> None:
        """A new AUTH string when AUTH turns on; none once it is off."""
        if not enabled:
            self.store.delete(AUTH_KIND, name)
        elif self.store.get(AUTH_KIND, name) is None:
            self.store.put(AUTH_KIND, name, {"authString": str(uuid.uuid4())})

    def create(self, instance_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store the instance CREATING; answers its operation."""
        if not _ID_RE.match(instance_id):
            raise InvalidArgument(
                f"Invalid instance_id {instance_id!r}: it must be 1-40 lowercase letters, "
                "numbers or hyphens, start with a letter and end with a letter or number."
            )
        tier = body.get("tier")
        if tier not in TIERS:
            raise InvalidArgument("tier is required: BASIC or STANDARD_HA.")
        network = body.get("authorizedNetwork") or (
            f"projects/{self.project_id}/global/networks/default"
        )
        if not _NETWORK_RE.match(network):
            raise InvalidArgument(f"Invalid authorized_network {network!r}.")
        mode = body.get("connectMode") or "DIRECT_PEERING"
        if mode not in CONNECT_MODES:
            raise InvalidArgument(f"Invalid connect_mode {mode!r}.")
        name = self.name(instance_id)
        reserved, _ = _private_range(name)
        rec: dict[str, Any] = {
            "name": name,
            "labels": check_labels(body.get("labels"), what="instance"),
            "locationId": f"{self.location}-b",
            "currentLocationId": f"{self.location}-b",
            "redisVersion": body.get("redisVersion") or DEFAULT_VERSION,
            "reservedIpRange": reserved,
            "port": PORT,
            "createTime": rfc3339(self.emu.clock()),
            "state": "CREATING",
            "tier": tier,
            "memorySizeGb": _check_memory(body.get("memorySizeGb")),
            "authorizedNetwork": network,
            "connectMode": mode,
            "authEnabled": bool(body.get("authEnabled")),
            "transitEncryptionMode": body.get("transitEncryptionMode") or "DISABLED",
            "persistenceConfig": {"persistenceMode": "DISABLED"},
        }
        if body.get("displayName"):
            rec["displayName"] = body["displayName"]
        with self.store.transaction():
            if self.store.get(INSTANCE_KIND, name) is not None:
                raise AlreadyExists(f"Resource '{name}' already exists")
            self.store.put(INSTANCE_KIND, name, rec)
            self._set_auth(name, rec["authEnabled"])
            return self._operation("create", name)

    def patch(
        self, instance: str, body: dict[str, Any], mask: builtins.list[str]
    ) -> dict[str, Any]:
        """Set the ``mask`` fields from ``body``; the instance is UPDATING until its operation
        completes. Answers the operation."""
        if not mask:
            raise InvalidArgument("update_mask is required.")
        for f in mask:
            if f not in MUTABLE:
                raise InvalidArgument(f"Invalid update_mask path: {f}")
        with self.store.transaction():
            rec = self.get(instance)
            if rec["state"] != "READY":
                raise FailedPrecondition(
                    f"The instance is not ready to be updated: it is {rec['state']}."
                )
            for f in mask:
                value = body.get(f)
                if f == "labels":
                    value = check_labels(value, what="instance")
                if f == "memorySizeGb":
                    value = _check_memory(value)
                if f == "authEnabled":
                    value = bool(value)
                    self._set_auth(rec["name"], value)
                rec[f] = value
            rec["state"] = "UPDATING"
            self.store.put(INSTANCE_KIND, rec["name"], rec)
            return self._operation("update", rec["name"])

    def delete(self, instance: str) -> dict[str, Any]:
        """The instance is DELETING until its operation completes; answers the operation."""
        with self.store.transaction():
            rec = self.get(instance)
            if rec["state"] == "DELETING":
                raise FailedPrecondition("The instance is already being deleted.")
            rec["state"] = "DELETING"
            self.store.put(INSTANCE_KIND, rec["name"], rec)
            # an outcome rule: the operation ends in error and the instance is READY again
            failure = self.emu.outcomes.take("delete", rec["name"])
            return self._operation("delete", rec["name"], failure=failure)

    def _operation(self, verb: str, name: str, *, failure: str | None = None) -> dict[str, Any]:
        kind = f"redis.instance.{verb}"
        return self.emu.ops.start(
            completer=kind,
            duration_kind=kind,
            target=name,
            args={"project": self.project_id, "location": self.location, "failure": failure},
            metadata={
                "@type": TYPE_PREFIX + "OperationMetadata",
                "createTime": rfc3339(self.emu.clock()),
                "target": name,
                "verb": verb,
                "cancelRequested": False,
                "apiVersion": "v1",
            },
        )


def _live(emu: Emulator, name: str, state: str) -> dict[str, Any]:
    rec = emu.store.get(INSTANCE_KIND, name)
    if rec is None or rec["state"] != state:
        raise NotFound(f"Resource '{name}' was not found")
    return rec


def _endpoint(emu: Emulator, rec: dict[str, Any]) -> tuple[str, int]:
    """Where clients reach the instance: its local redis-server (NotYet until it answers PING)
    when the emulator executes and has one, else a private address of its range."""
    local = emu.local.redis
    if local is None:
        return _private_range(rec["name"])[1], PORT
    port = local.start(rec["name"], _password(emu, rec["name"]))
    if not answers(port):
        if not local.running(rec["name"]):
            raise ApiError(500, "Internal error encountered.")  # its redis-server exited
        raise NotYet()
    return HOST, port


def _password(emu: Emulator, name: str) -> str | None:
    """The AUTH string a local redis-server requires (None: AUTH off)."""
    return (emu.store.get(AUTH_KIND, name) or {}).get("authString")


def _ready(emu: Emulator, op: dict[str, Any], state: str) -> dict[str, Any]:
    rec = _live(emu, op["target"], state)
    rec["host"], rec["port"] = _endpoint(emu, rec)
    rec["state"] = "READY"
    emu.store.put(INSTANCE_KIND, rec["name"], rec)
    return {"@type": TYPE_PREFIX + "Instance", **rec}


@completer("redis.instance.create")
def _finish_create(emu: Emulator, op: dict[str, Any]) -> dict[str, Any]:
    return _ready(emu, op, "CREATING")


@completer("redis.instance.update")
def _finish_update(emu: Emulator, op: dict[str, Any]) -> dict[str, Any]:
    return _ready(emu, op, "UPDATING")


@completer("redis.instance.delete")
def _finish_delete(emu: Emulator, op: dict[str, Any]) -> dict[str, Any] | None:
    rec = _live(emu, op["target"], "DELETING")
    failure = op["args"].get("failure")
    if failure:
        rec["state"] = "READY"
        emu.store.put(INSTANCE_KIND, rec["name"], rec)
        op["error"] = FailedPrecondition(failure).op_error()
        return None
    emu.store.delete(INSTANCE_KIND, rec["name"])
    emu.store.delete(AUTH_KIND, rec["name"])
    local = emu.local.redis
    if local is not None:
        local.remove(rec["name"])
    return {"@type": EMPTY_TYPE}


def realize(emu: Emulator) -> None:
    """An emulator start: every READY instance's redis-server runs again (on its port when
    that is free, else on another, which its record then names) and answers PING before the
    emulator serves (a READY instance is reachable)."""
    local = emu.local.redis
    if local is None:
        return
    for name, rec in emu.store.list(INSTANCE_KIND):
        if rec["state"] not in ("READY", "UPDATING"):
            continue
        try:
            port = local.start(name, _password(emu, name))
        except OSError as exc:
            print(f"djdeploy emulator: redis instance {name}: {exc}", file=sys.stderr)
            continue
        if not local.wait_answering(name, port):
            print(
                f"djdeploy emulator: redis instance {name}: its redis-server exited",
                file=sys.stderr,
            )
            continue
        if (rec.get("host"), rec.get("port")) != (HOST, port):
            rec["host"], rec["port"] = HOST, port
            emu.store.put(INSTANCE_KIND, name, rec)
