"""Secrets: create, get, list (with a filter), patch by update mask, delete (versions and IAM
policy go too). A secret with an expiration (``ttl`` or ``expireTime``) is deleted when the
emulator's clock passes it: from then on it answers 404 and is gone from lists."""

from __future__ import annotations

import builtins
import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import policies
from ..errors import AlreadyExists, ApiError, InvalidArgument, NotFound
from ..formats import rfc3339
from ..projects import resolve
from ..serviceusage import require_enabled

if TYPE_CHECKING:
    from ..context import Emulator

SERVICE = "secretmanager.googleapis.com"
SECRET_KIND = "secretmanager.secret"
VERSION_KIND = "secretmanager.version"
_SECRET_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_LABEL_KEY_RE = re.compile(r"^[\w-]{1,63}$")  # letters (any case in Secret Manager), digits, _ -
#: fields a create copies as sent
_AS_SENT = ("annotations", "topics", "rotation", "versionAliases")
#: update mask paths a patch takes (the expiration ones are "ttl" and "expireTime")
MUTABLE = frozenset({*_AS_SENT, "labels", "expireTime", "ttl", "versionDestroyTtl"})


@dataclass(frozen=True)
class Expiration:
    """A Secret's expiration as sent: a ``ttl`` (``seconds`` from now, ``relative``) or an
    ``expireTime`` (the clock second ``seconds``)."""

    seconds: float
    relative: bool

    def at(self, now: float) -> float:
        return now + self.seconds if self.relative else self.seconds


def policy_key(project_id: str, secret: str) -> str:
    """The IAM resource key (policies.py) of a secret."""
    return f"projects/{project_id}/secrets/{secret}"


def secret_key(project_id: str, secret: str) -> str:
    return f"{project_id}/{secret}"


def etag(value: Any) -> str:
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]
    return f'"{digest}"'


def check_etag(rec: dict[str, Any], sent: str | None, what: str) -> None:
    """A stale ``etag`` sent with a change is 400 FAILED_PRECONDITION."""
    if sent and sent != rec["etag"]:
        raise ApiError(
            400,
            f"The etag provided in the request does not match the current etag of the {what}.",
            status="FAILED_PRECONDITION",
        )


def duration_json(seconds: float) -> str:
    """A google.protobuf.Duration in its JSON form ("86400s", "1.5s")."""
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds:.9f}".rstrip("0") + "s"


def _check_labels(labels: Any) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, dict) or len(labels) > 64:
        raise InvalidArgument("Secret labels must be a map of at most 64 entries.")
    for k, v in labels.items():
        if not isinstance(k, str) or not _LABEL_KEY_RE.match(k) or not isinstance(v, str):
            raise InvalidArgument(f"Invalid label key or value: {k!r}.")
        if len(v) > 63:
            raise InvalidArgument(f"Label value for {k!r} is longer than 63 characters.")
    return dict(labels)


def _matches(rec: dict[str, Any], flt: str) -> bool:
    """The subset of the list filter syntax we need: terms joined by spaces / AND, each
    ``labels.KEY=VALUE``, ``labels.KEY:VALUE``, ``labels.KEY:*`` or ``name:TEXT``."""
    labels = rec.get("labels") or {}
    for term in re.split(r"\s+(?:AND\s+)?", flt.strip()):
        if not term:
            continue
        m = re.match(r"^labels\.([\w-]+)\s*([:=])\s*(.*)$", term)
        if m:
            key, op, value = m.group(1), m.group(2), m.group(3).strip('"')
            if key not in labels:
                return False
            if value == "*":
                continue
            if op == "=" and labels[key] != value:
                return False
            if op == ":" and value not in labels[key]:
                return False
            continue
        m = re.match(r"^name\s*:\s*(.*)$", term)
        if m:
            if m.group(1).strip('"') not in rec["name"].rsplit("/", 1)[-1]:
                return False
            continue
        raise InvalidArgument(f"Invalid filter: {flt}")
    return True


class Secrets:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def project(self, project: str) -> tuple[str, str]:
        """(project id, number) of a project named either way; the API must be enabled."""
        project_id, number = resolve(self.emu, project)
        require_enabled(self.emu, project_id, SERVICE)
        return project_id, number

    def live(self, project_id: str, secret: str) -> dict[str, Any] | None:
        """The stored secret, or None; an expired one is deleted first."""
        rec = self.emu.store.get(SECRET_KIND, secret_key(project_id, secret))
        expire_at = None if rec is None else rec.get("_expireAt")
        if expire_at is not None and expire_at <= self.emu.clock():
            self._forget(project_id, secret)
            return None
        return rec

    def get(self, project_id: str, number: str, secret: str) -> dict[str, Any]:
        rec = self.live(project_id, secret)
        if rec is None:
            raise NotFound(f"Secret [projects/{number}/secrets/{secret}] not found.")
        return rec

    def list(self, project_id: str, flt: str) -> list[dict[str, Any]]:
        names = [k.split("/", 1)[1] for k, _ in self.emu.store.list(SECRET_KIND, project_id + "/")]
        recs = [r for r in (self.live(project_id, n) for n in names) if r is not None]
        return [r for r in recs if _matches(r, flt)] if flt else recs

    def create(
        self,
        project_id: str,
        number: str,
        secret: str,
        body: dict[str, Any],
        *,
        expiration: Expiration | None,
        destroy_ttl: float | None,
    ) -> dict[str, Any]:
        """``body`` is the Secret sent; ``expiration`` / ``destroy_ttl`` its expiration and
        versionDestroyTtl (seconds), already parsed."""
        if not _SECRET_ID_RE.match(secret):
            raise InvalidArgument(
                f"Secret ID '{secret}' is invalid: it must be 1-255 characters of letters, "
                "digits, '_' or '-'."
            )
        replication = body.get("replication")
        if not isinstance(replication, dict) or not (
            "automatic" in replication or "userManaged" in replication
        ):
            raise InvalidArgument("Secret.replication is required: set automatic or userManaged.")
        labels = _check_labels(body.get("labels"))
        store = self.emu.store
        with store.transaction():
            if self.live(project_id, secret) is not None:
                raise AlreadyExists(f"Secret [projects/{number}/secrets/{secret}] already exists.")
            rec: dict[str, Any] = {
                "name": f"projects/{number}/secrets/{secret}",
                "replication": replication,
                "createTime": rfc3339(self.emu.clock()),
            }
            if labels:
                rec["labels"] = labels
            rec.update({k: body[k] for k in _AS_SENT if k in body})
            self._expire(rec, expiration)
            self._destroy_ttl(rec, destroy_ttl)
            self._save(project_id, secret, rec)
        return rec

    def patch(
        self,
        project_id: str,
        number: str,
        secret: str,
        body: dict[str, Any],
        *,
        mask: builtins.list[str],
        expiration: Expiration | None,
        destroy_ttl: float | None,
    ) -> dict[str, Any]:
        """Set the ``mask`` fields from ``body`` (absent: cleared); "ttl" / "expireTime" set or
        clear the ``expiration``, "versionDestroyTtl" the delayed destruction (``destroy_ttl``)."""
        if not mask:
            raise InvalidArgument("update_mask is required.")
        for m in mask:
            if m not in MUTABLE:
                raise InvalidArgument(f"The update_mask path '{m}' is not supported.")
        store = self.emu.store
        with store.transaction():
            rec = self.get(project_id, number, secret)
            check_etag(rec, body.get("etag"), "secret")
            for m in mask:
                if m in ("ttl", "expireTime"):
                    self._expire(rec, expiration)
                elif m == "versionDestroyTtl":
                    self._destroy_ttl(rec, destroy_ttl)
                else:
                    value = _check_labels(body.get(m)) if m == "labels" else body.get(m)
                    if value in (None, {}, []):
                        rec.pop(m, None)
                    else:
                        rec[m] = value
            self._save(project_id, secret, rec)
        return rec

    def delete(self, project_id: str, number: str, secret: str, *, etag: str | None) -> None:
        with self.emu.store.transaction():
            check_etag(self.get(project_id, number, secret), etag, "secret")
            self._forget(project_id, secret)

    def _expire(self, rec: dict[str, Any], expiration: Expiration | None) -> None:
        if expiration is None:
            rec.pop("expireTime", None)
            rec.pop("_expireAt", None)
            return
        at = expiration.at(self.emu.clock())
        if at <= self.emu.clock():
            raise InvalidArgument(
                "The expiration must be in the future: set a later expireTime or ttl."
            )
        rec["expireTime"] = rfc3339(at)
        rec["_expireAt"] = at

    def _destroy_ttl(self, rec: dict[str, Any], seconds: float | None) -> None:
        if seconds is None:
            rec.pop("versionDestroyTtl", None)
            rec.pop("_destroyTtl", None)
            return
        rec["versionDestroyTtl"] = duration_json(seconds)
        rec["_destroyTtl"] = seconds

    def _save(self, project_id: str, secret: str, rec: dict[str, Any]) -> None:
        rec.pop("etag", None)
        rec["etag"] = etag(rec)
        self.emu.store.put(SECRET_KIND, secret_key(project_id, secret), rec)

    def _forget(self, project_id: str, secret: str) -> None:
        store = self.emu.store
        with store.transaction():
            for k, _ in store.list(VERSION_KIND, secret_key(project_id, secret) + "/"):
                store.delete(VERSION_KIND, k)
            store.delete(SECRET_KIND, secret_key(project_id, secret))
            policies.delete_policy(self.emu, policy_key(project_id, secret))
