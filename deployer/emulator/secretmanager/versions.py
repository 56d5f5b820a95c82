"""Secret versions: numbered 1, 2, ... per secret (never reused while it lives); ``latest`` is
the newest in any state. Destroying one on a secret with a ``versionDestroyTtl`` disables it
and schedules the destruction (``scheduledDestroyTime``); enabling or disabling it meanwhile
cancels that; the emulator's clock passing it destroys the version."""

from __future__ import annotations

import base64
import builtins
from typing import TYPE_CHECKING, Any

from ..checksums import crc32c
from ..errors import ApiError, InvalidArgument, NotFound
from ..formats import rfc3339
from .secrets import VERSION_KIND, Secrets, check_etag, etag, secret_key

if TYPE_CHECKING:
    from ..context import Emulator

MAX_PAYLOAD = 65536
STATES = ("ENABLED", "DISABLED", "DESTROYED")


def _vkey(project_id: str, secret: str, number: int) -> str:
    return f"{project_id}/{secret}/{number:010d}"


def _number(v: dict[str, Any]) -> int:
    return int(v["name"].rsplit("/", 1)[-1])


def _not_enabled(v: dict[str, Any]) -> ApiError:
    return ApiError(
        400, f"Secret Version [{v['name']}] is in {v['state']} state.", status="FAILED_PRECONDITION"
    )


class Versions:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.secrets = Secrets(emu)

    def add(
        self, project_id: str, number: str, secret: str, data: bytes, *, crc: int | None
    ) -> dict[str, Any]:
        """A new ENABLED version holding ``data``; ``crc`` (sent dataCrc32c) must match it."""
        if len(data) > MAX_PAYLOAD:
            raise InvalidArgument(
                f"Secret payload exceeds the maximum size of {MAX_PAYLOAD} bytes."
            )
        if crc is not None and crc != crc32c(data):
            raise InvalidArgument("Checksum mismatch: data_crc32c does not match the payload data.")
        store = self.emu.store
        with store.transaction():
            self.secrets.get(project_id, number, secret)
            versions = self._all(project_id, secret)
            n = _number(versions[-1]) + 1 if versions else 1
            v: dict[str, Any] = {
                "name": f"projects/{number}/secrets/{secret}/versions/{n}",
                "createTime": rfc3339(self.emu.clock()),
                "state": "ENABLED",
                "replicationStatus": {"automatic": {}},
                "clientSpecifiedPayloadChecksum": crc is not None,
                "_data": base64.b64encode(data).decode(),
            }
            self._save(project_id, secret, v)
        return v

    def list(
        self, project_id: str, number: str, secret: str, *, state: str | None
    ) -> list[dict[str, Any]]:
        """Newest first; only those in ``state`` when given."""
        with self.emu.store.transaction():
            self.secrets.get(project_id, number, secret)
            versions = list(reversed(self._all(project_id, secret)))
        return [v for v in versions if state is None or v["state"] == state]

    def get(self, project_id: str, number: str, secret: str, version: str) -> dict[str, Any]:
        with self.emu.store.transaction():
            self.secrets.get(project_id, number, secret)
            v = self._find(project_id, secret, version)
        if v is None:
            raise NotFound(
                f"Secret Version [projects/{number}/secrets/{secret}/versions/{version}] not found."
            )
        return v

    def access(self, project_id: str, number: str, secret: str, version: str) -> dict[str, Any]:
        """The version, which must be ENABLED (else 400 FAILED_PRECONDITION)."""
        v = self.get(project_id, number, secret, version)
        if v["state"] != "ENABLED":
            raise _not_enabled(v)
        return v

    def transition(
        self, project_id: str, number: str, secret: str, version: str, *, to: str, etag: str | None
    ) -> dict[str, Any]:
        """enable / disable / destroy. A destroyed version stays destroyed; with the secret's
        ``versionDestroyTtl``, destroy disables and schedules instead."""
        store = self.emu.store
        with store.transaction():
            rec = self.secrets.get(project_id, number, secret)
            v = self.get(project_id, number, secret, version)
            check_etag(v, etag, "secret version")
            if v["state"] == "DESTROYED" and to != "DESTROYED":
                raise _not_enabled(v)
            if to == "DESTROYED" and v.get("_destroyAt") is not None:
                return v  # already scheduled: the first schedule holds
            now = self.emu.clock()
            v.pop("scheduledDestroyTime", None)  # enable/disable cancel a scheduled destroy
            if to == "DESTROYED" and rec.get("_destroyTtl") and v["state"] != "DESTROYED":
                at = now + float(rec["_destroyTtl"])
                v["state"] = "DISABLED"
                v["scheduledDestroyTime"] = rfc3339(at)
                v["_destroyAt"] = at
            else:
                v.pop("_destroyAt", None)
                self._set_state(v, to, now)
            v["_changed"] = now
            self._save(project_id, secret, v)
        return v

    def enabled_number(self, project_id: str, secret: str, version: str) -> str | None:
        """The number a reference (number or "latest") resolves to when the secret exists and
        that version is ENABLED, else None (Cloud Run checking a revision's secrets)."""
        with self.emu.store.transaction():
            if self.secrets.live(project_id, secret) is None:
                return None
            v = self._find(project_id, secret, version)
        return str(_number(v)) if v is not None and v["state"] == "ENABLED" else None

    def _set_state(self, v: dict[str, Any], state: str, at: float) -> None:
        v["state"] = state
        if state == "DESTROYED":
            v.pop("_data", None)
            v["destroyTime"] = v.get("destroyTime") or rfc3339(at)

    def _settle(self, project_id: str, secret: str, v: dict[str, Any]) -> dict[str, Any]:
        """Destroy the version if its scheduled destruction is due."""
        at = v.get("_destroyAt")
        if at is not None and at <= self.emu.clock():
            v.pop("_destroyAt")
            v.pop("scheduledDestroyTime", None)
            self._set_state(v, "DESTROYED", at)
            self._save(project_id, secret, v)
        return v

    def _all(self, project_id: str, secret: str) -> builtins.list[dict[str, Any]]:
        """The secret's versions, oldest first (due destructions applied)."""
        stored = self.emu.store.list(VERSION_KIND, secret_key(project_id, secret) + "/")
        return [self._settle(project_id, secret, v) for _, v in stored]

    def _find(self, project_id: str, secret: str, version: str) -> dict[str, Any] | None:
        if version == "latest":
            versions = self._all(project_id, secret)
            return versions[-1] if versions else None
        if not version.isdigit():
            return None
        v = self.emu.store.get(VERSION_KIND, _vkey(project_id, secret, int(version)))
        return None if v is None else self._settle(project_id, secret, v)

    def _save(self, project_id: str, secret: str, v: dict[str, Any]) -> None:
        v["etag"] = etag({"name": v["name"], "state": v["state"], "t": v.get("_changed")})
        self.emu.store.put(VERSION_KIND, _vkey(project_id, secret, _number(v)), v)
