"""What the per-tenant lease needs from Google: one small object written only under a
generation precondition, and the account the calls are made as.

A lease is an empty object whose custom metadata holds its fields. Every write names the
generation it replaces (`ifGenerationMatch`; 0: the object must not exist), so of two writers
racing on one generation exactly one succeeds and the other gets 412. Generations are unique
per object name across its whole history, which makes them a safer witness than a
metageneration (that restarts at 1 with every new generation). The library's own retries are
off (`retry=None`): cloud.call() retries, and a retried write that had already been applied
comes back 412; the caller tells it apart by the lease id it wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deployer.errors import Conflict, NotFound
from deployer.gcp.clients import TIMEOUT

if TYPE_CHECKING:
    from deployer.gcp.cloud import Cloud

PRECONDITION_FAILED = 412


@dataclass(frozen=True)
class StoredLease:
    generation: int
    fields: Mapping[str, str]


def _stored(blob: Any) -> StoredLease:
    return StoredLease(int(blob.generation), dict(blob.metadata or {}))


def _precondition_failed(exc: Conflict) -> bool:
    return exc.code == PRECONDITION_FAILED


class LeaseStore:
    """Lease objects in one bucket (the project's staging bucket)."""

    def __init__(self, cloud: Cloud, bucket: str) -> None:
        self.cloud = cloud
        self.bucket = bucket

    @property
    def _bucket(self) -> Any:
        return self.cloud.clients.storage.bucket(self.bucket)

    def read(self, name: str) -> StoredLease | None:
        """The lease object, or None when there is none (or no bucket)."""
        blob = self.cloud.read(lambda: self._bucket.get_blob(name, retry=None, timeout=TIMEOUT))
        return _stored(blob) if blob is not None else None

    def write(
        self, name: str, fields: Mapping[str, str], *, if_generation: int
    ) -> StoredLease | None:
        """Write the lease if its generation is still `if_generation` (0: if there is none);
        None when that precondition failed. NotFound when the bucket does not exist."""

        def put() -> Any:
            blob = self._bucket.blob(name)
            blob.metadata = dict(fields)
            blob.upload_from_string(
                b"",
                content_type="application/octet-stream",
                if_generation_match=if_generation,
                retry=None,
                timeout=TIMEOUT,
            )
            return blob

        try:
            return _stored(self.cloud.call(put))
        except Conflict as exc:
            if _precondition_failed(exc):
                return None
            raise

    def delete(self, name: str, *, if_generation: int) -> bool:
        """Delete the lease if its generation is still `if_generation`; False when it is not
        (someone else's lease now). Already gone counts as deleted."""
        try:
            self.cloud.call(
                lambda: self._bucket.blob(name).delete(
                    if_generation_match=if_generation, retry=None, timeout=TIMEOUT
                )
            )
        except NotFound:
            return True
        except Conflict as exc:
            if _precondition_failed(exc):
                return False
            raise
        return True

    def account(self) -> str:
        """The account API calls are made as, when the credentials name one ("" otherwise:
        anonymous against an emulator, or user credentials without an email)."""
        creds = self.cloud.clients.credentials
        for attr in ("service_account_email", "signer_email", "account"):
            value = getattr(creds, attr, "")
            if isinstance(value, str) and "@" in value:
                return value
        return ""
