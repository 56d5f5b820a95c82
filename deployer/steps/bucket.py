"""Cloud Storage buckets: the tenant's media bucket and the project's source staging bucket.

Both have uniform bucket-level access (IAM only, no object ACLs) and public access prevention
enforced: media is served by the app (GCS FUSE mount), never publicly. Bucket names are global
across every project of every customer, so a 409 on create may be someone else's bucket: it is
adopted only when its labels say it is ours.

- MediaBucket ("bucket", data): names.bucket in media.location (default: the region), labelled
  with the tenant's labels; ours by ``config.names.owns`` (the rule every tenant resource
  shares). destroy keeps it unless --delete-data, which empties then deletes it.
- SourcesBucket ("sources-bucket"): names.staging_bucket, shared by every tenant of the project
  (labelled managed-by=djdeploy only), objects deleted after 30 days by a lifecycle rule.
  destroy keeps it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from deployer import errors
from deployer.errors import Conflict, PermissionDenied
from deployer.steps.base import (
    WRITES,
    Action,
    Broken,
    Change,
    NotOurs,
    Operation,
    field_changes,
)

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud

SOURCE_RETENTION_DAYS = 30
_IAM_CONFIG = {"uniformBucketLevelAccess": {"enabled": True}, "publicAccessPrevention": "enforced"}


class _BucketStep(Operation):
    """What both buckets share; subclasses say which name, labels and lifecycle they want."""

    config: Config
    name: str
    EXPECT: ClassVar[Mapping[Action, str]] = WRITES

    # -- per bucket ------------------------------------------------------------------------

    @property
    def bucket(self) -> str:
        raise NotImplementedError

    @property
    def location(self) -> str:
        return self.config.region

    @property
    def labels(self) -> dict[str, str]:
        raise NotImplementedError

    def lifecycle_rules(self) -> list[dict[str, Any]]:
        return []

    def is_ours(self, labels: Mapping[str, str] | None) -> bool:
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------

    @property
    def resource(self) -> str:
        return f"bucket {self.bucket}"

    def desired(self) -> dict[str, Any]:
        want: dict[str, Any] = {"labels": self.labels, "iamConfiguration": _IAM_CONFIG}
        if self.lifecycle_rules():
            want["lifecycle"] = {"rule": self.lifecycle_rules()}
        return want

    def not_ours_message(self) -> str:
        return (
            f"{self.resource} exists but is not labelled as ours (bucket names are global: "
            "another project or person may own it): delete it, or choose another tenant, app "
            "or project"
        )

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        return cloud.storage.get_bucket(self.bucket)

    def diff(self, observed: dict[str, Any] | None) -> Change:
        info = {"bucket": self.bucket}
        if observed is None:
            return self.create(
                f"{self.resource} does not exist",
                field_changes({"location": self.location, **self.desired()}, None),
                info=info,
            )
        if not self.is_ours(observed.get("labels")):
            return self.refuse(NotOurs(self.not_ours_message()), info=info)
        have_location = str(observed.get("location") or "")
        if have_location.upper() != self.location.upper():  # Google upper-cases locations
            return self.refuse(
                Broken(
                    f"{self.resource} is in {have_location}, the configuration wants "
                    f"{self.location}: a bucket's location cannot change (move the objects to "
                    "a new bucket, or set media.location to the bucket's location)"
                ),
                info=info,
            )
        changes = field_changes(self.desired(), observed)
        if changes:
            return self.update(
                f"{self.resource} differs: {', '.join(c.path for c in changes)}",
                changes,
                info=info,
            )
        return self.noop(f"{self.resource} exists and matches", info=info)

    def _patch(self, cloud: Cloud, change: Change) -> None:
        """Send the top-level fields that differ (labels merge: other labels stay)."""
        desired = self.desired()
        tops = {c.path.split(".", 1)[0] for c in change.fields}
        fields = {k: desired[k] for k in tops if k in desired}
        if fields:
            cloud.storage.patch_bucket(self.bucket, fields)

    def apply(self, cloud: Cloud, change: Change) -> None:
        if change.action is Action.CREATE:
            try:
                cloud.storage.create_bucket(
                    self.bucket,
                    location=self.location,
                    labels=self.labels,
                    lifecycle_rules=self.lifecycle_rules() or None,
                )
            except Conflict:
                self._adopt(cloud)
            return
        self._patch(cloud, change)

    def _adopt(self, cloud: Cloud) -> None:
        """409 on create: ours (a retried create, a previous run) or someone else's."""
        try:
            existing = cloud.storage.get_bucket(self.bucket)
        except PermissionDenied:
            existing = None  # another project's bucket we may not even read
        if existing is None or not self.is_ours(existing.get("labels")):
            raise errors.NotOurs(self.not_ours_message()) from None
        change = self.diff(existing)
        if change.action is Action.UPDATE:
            self._patch(cloud, change)


@dataclass(frozen=True)
class MediaBucket(_BucketStep):
    config: Config
    name: str = "bucket"
    needs: Sequence[str] = ("apis",)

    @property
    def bucket(self) -> str:
        return self.config.names.bucket

    @property
    def location(self) -> str:
        return self.config.media.location or self.config.region

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.names.labels)

    def is_ours(self, labels: Mapping[str, str] | None) -> bool:
        """The rule every tenant resource shares (``Names.owns``)."""
        return self.config.names.owns(labels)

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        observed = cloud.storage.get_bucket(self.bucket)
        if observed is None:
            return self.noop(f"{self.resource} already gone")
        if not self.is_ours(observed.get("labels")):
            return self.noop(f"kept {self.resource}: not labelled ours")
        if not delete_data:
            return self.noop(
                f"kept: {self.resource} holds media (destroy --delete-data deletes it)"
            )
        removed = cloud.storage.delete_all_objects(self.bucket)
        try:
            cloud.storage.delete_bucket(self.bucket)
        except Conflict:  # an object arrived meanwhile: one more pass
            removed += cloud.storage.delete_all_objects(self.bucket)
            cloud.storage.delete_bucket(self.bucket)
        return self.deleted(f"deleted {self.resource} and its {removed} object generation(s)")


@dataclass(frozen=True)
class SourcesBucket(_BucketStep):
    config: Config
    name: str = "sources-bucket"
    needs: Sequence[str] = ("apis",)

    @property
    def bucket(self) -> str:
        return self.config.names.staging_bucket

    @property
    def labels(self) -> dict[str, str]:
        return {"managed-by": "djdeploy"}

    def lifecycle_rules(self) -> list[dict[str, Any]]:
        return [{"action": {"type": "Delete"}, "condition": {"age": SOURCE_RETENTION_DAYS}}]

    def is_ours(self, labels: Mapping[str, str] | None) -> bool:
        """Shared by every tenant of the project, so no tenant's rule: managed-by=djdeploy."""
        return (labels or {}).get("managed-by") == "djdeploy"

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        return self.noop("kept: shared by every tenant of the project")
