"""IAM service accounts: state and behaviour (no HTTP).

An account id is 6-30 characters; a second create of the same id is 409 ALREADY_EXISTS; a new
account is eventually consistent: until ``_visibleAt`` (created + the ``iam.sa.propagation``
latency) it reads as 404 and IAM policies refuse bindings naming it (policies.py), while a create
of the same id already answers 409; deleting an account rewrites the bindings that named it to
``deleted:serviceAccount:<email>?uid=<uniqueId>``, as getIamPolicy shows them.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import re
from typing import TYPE_CHECKING, Any

from .. import policies
from ..errors import AlreadyExists, InvalidArgument, NotFound
from ..projects import resolve
from ..serviceusage import require_enabled

if TYPE_CHECKING:
    from ..context import Emulator

SA_KIND = policies.SA_KIND  # "iam.sa", keyed by email
UID_KIND = "iam.sa.uid"  # uniqueId -> {"email"}
SERVICE = "iam.googleapis.com"
PATCHABLE = ("displayName", "description")
_ACCOUNT_ID_RE = re.compile(r"^[a-z](?:[-a-z0-9]{4,28}[a-z0-9])$")


def sa_policy_key(email: str) -> str:
    return f"serviceAccounts/{email}"


def _unique_id(email: str, n: int) -> str:
    h = int.from_bytes(hashlib.sha256(f"{email}#{n}".encode()).digest()[:8], "big")
    return str(100_000_000_000_000_000_000 + h % 900_000_000_000_000_000_000)


def _not_found() -> NotFound:
    return NotFound("Unknown service account", status="NOT_FOUND")


class ServiceAccounts:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.store = emu.store

    def project(self, project: str) -> str:
        """The project's id, once IAM is enabled in it."""
        project_id, _ = resolve(self.emu, project)
        require_enabled(self.emu, project_id, SERVICE)
        return project_id

    def lookup(self, project: str, ident: str, *, visible_only: bool = True) -> dict[str, Any]:
        """The account by email or uniqueId, in ``project`` ("-" = any project)."""
        project_id = self.project(project) if project != "-" else "-"
        email = ident
        if ident.isdigit():
            ref = self.store.get(UID_KIND, ident)
            if ref is None:
                raise _not_found()
            email = ref["email"]
        doc = self.store.get(SA_KIND, email)
        if doc is None or (project_id != "-" and doc["projectId"] != project_id):
            raise _not_found()
        if visible_only and float(doc.get("_visibleAt", 0.0)) > self.emu.clock():
            raise _not_found()
        return doc

    def list(self, project_id: str) -> list[dict[str, Any]]:
        return [d for _, d in self.store.list(SA_KIND) if d["projectId"] == project_id]

    def create(self, project_id: str, body: dict[str, Any]) -> dict[str, Any]:
        account_id = body.get("accountId") or ""
        if not _ACCOUNT_ID_RE.match(account_id):
            raise InvalidArgument(
                f'Invalid value for field "accountId": "{account_id}". It must be 6 to 30 '
                "characters of lowercase letters, digits and hyphens, start with a letter and "
                "not end with a hyphen."
            )
        sa = body.get("serviceAccount") or {}
        display = sa.get("displayName") or ""
        if len(display) > 100:
            raise InvalidArgument("displayName must be at most 100 characters.")
        description = sa.get("description") or ""
        if len(description) > 256:
            raise InvalidArgument("description must be at most 256 characters.")
        email = f"{account_id}@{project_id}.iam.gserviceaccount.com"
        emu, store = self.emu, self.store
        with store.transaction():
            if store.get(SA_KIND, email) is not None:
                raise AlreadyExists(
                    f"Service account {account_id} already exists within project "
                    f"projects/{project_id}.",
                )
            uid = _unique_id(email, store.next_id("iam.sa"))
            etag = base64.b64encode(hashlib.sha256(uid.encode()).digest()[:8]).decode()
            doc = {
                "name": f"projects/{project_id}/serviceAccounts/{email}",
                "projectId": project_id,
                "uniqueId": uid,
                "email": email,
                "displayName": display,
                "description": description,
                "etag": etag,
                "oauth2ClientId": uid,
                "_visibleAt": emu.clock() + emu.latency.duration("iam.sa.propagation"),
            }
            store.put(SA_KIND, email, doc)
            store.put(UID_KIND, uid, {"email": email})
        return doc

    def patch(
        self, project: str, ident: str, fields: builtins.list[str], new: dict[str, Any]
    ) -> dict[str, Any]:
        """Set the ``fields`` (of PATCHABLE) of the account from ``new``."""
        if not fields:
            raise InvalidArgument("updateMask is required.")
        for f in fields:
            if f not in PATCHABLE:
                raise InvalidArgument(f"Invalid updateMask field: {f}")
        with self.store.transaction():
            doc = self.lookup(project, ident)
            for f in fields:
                doc[f] = new.get(f) or ""
            self.store.put(SA_KIND, doc["email"], doc)
        return doc

    def delete(self, project: str, ident: str) -> None:
        """Forget the account and its policy; bindings naming it are tombstoned."""
        with self.store.transaction():
            doc = self.lookup(project, ident, visible_only=False)
            email = doc["email"]
            self.store.delete(SA_KIND, email)
            policies.delete_policy(self.emu, sa_policy_key(email))
            self._tombstone_members(email, doc["uniqueId"])

    def _tombstone_members(self, email: str, uid: str) -> None:
        """Bindings naming the deleted account now read
        ``deleted:serviceAccount:<email>?uid=<id>``."""
        emu = self.emu
        old = f"serviceAccount:{email}"
        new = f"deleted:serviceAccount:{email}?uid={uid}"
        for key, policy in self.store.list(policies.POLICY_KIND):
            changed = False
            for b in policy.get("bindings", []):
                if old in b.get("members", []):
                    b["members"] = sorted({new if m == old else m for m in b["members"]})
                    policies.move_grant(emu, key, b["role"], old, new)
                    changed = True
            if changed:
                policy["etag"] = policies.new_etag(emu)  # the policy changed: a read etag is stale
                self.store.put(policies.POLICY_KIND, key, policy)
