"""Cloud Storage buckets, their IAM policy and legacy ACLs: state and behaviour, no HTTP."""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any

from .. import policies
from ..errors import ApiError
from ..formats import merge_patch
from ..projects import REGIONS
from . import mirror
from .errors import Conflict, Invalid, NotFound, PreconditionFailed, Required
from .model import (
    BUCKET_KIND,
    NONCURRENT_KIND,
    OBJECT_KIND,
    next_generation,
    refuse_unmodelled,
    timestamp,
)
from .preconditions import Conditions, etag

if TYPE_CHECKING:
    from ..context import Emulator

MULTI_REGIONS = frozenset({"US", "EU", "ASIA"})
DUAL_REGIONS = frozenset({"NAM4", "EUR4", "ASIA1", "EUR5", "EUR7", "EUR8"})
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")

NOT_EMPTY = "The bucket you tried to delete is not empty."
OWNED = "Your previous request to create the named bucket succeeded and you already own it."
TAKEN = (
    "The requested bucket name is not available. The bucket namespace is shared by all users "
    "of the system. Please select a different name and try again."
)
NO_BUCKET = "The specified bucket does not exist."
UNIFORM_ACL = (
    "Cannot get legacy ACL for a bucket that has uniform bucket-level access. Read more at "
    "https://cloud.google.com/storage/docs/uniform-bucket-level-access"
)

#: bucket fields the emulator keeps and answers; a client may set them
BUCKET_FIELDS = frozenset(
    {
        "name",
        "labels",
        "location",
        "storageClass",
        "iamConfiguration",
        "lifecycle",
        "versioning",
        "cors",
        "website",
        "logging",
        "rpo",
    }
)


def bucket_policy_key(bucket: str) -> str:
    return f"b/{bucket}"


def _check_location(location: str) -> tuple[str, str]:
    loc = location.upper()
    if loc in MULTI_REGIONS:
        return loc, "multi-region"
    if loc in DUAL_REGIONS:
        return loc, "dual-region"
    if location.lower() in REGIONS:
        return loc, "region"
    raise Invalid("The specified location constraint is not valid.")


def _check_labels(labels: Any) -> None:
    if not isinstance(labels, dict):
        raise Invalid("Invalid argument: labels must be an object.")
    if len(labels) > 64:
        raise Invalid("A bucket may have at most 64 labels.")
    for k, v in labels.items():
        if not re.match(r"^[a-z][a-z0-9_-]{0,62}$", k) or (
            v is not None and not re.match(r"^[a-z0-9_-]{0,63}$", str(v))
        ):
            raise Invalid(f"Invalid argument: label {k}={v}")


def _normalize_iam_config(cfg: dict[str, Any], now: float) -> dict[str, Any]:
    ubla = dict(cfg.get("uniformBucketLevelAccess") or cfg.get("bucketPolicyOnly") or {})
    enabled = bool(ubla.get("enabled", False))
    ubla = {"enabled": enabled}
    if enabled:
        ubla["lockedTime"] = timestamp(now + 90 * 86400)
    pap = cfg.get("publicAccessPrevention") or "inherited"
    if pap == "unspecified":
        pap = "inherited"
    if pap not in ("inherited", "enforced"):
        raise Invalid(f"Invalid value for publicAccessPrevention: {pap}")
    return {
        "bucketPolicyOnly": dict(ubla),
        "uniformBucketLevelAccess": dict(ubla),
        "publicAccessPrevention": pap,
    }


def _default_policy(project_id: str) -> dict[str, Any]:
    """A new bucket's policy: the legacy roles of the project's basic roles."""
    return {
        "version": 1,
        "bindings": [
            {
                "role": "roles/storage.legacyBucketOwner",
                "members": [f"projectEditor:{project_id}", f"projectOwner:{project_id}"],
            },
            {
                "role": "roles/storage.legacyBucketReader",
                "members": [f"projectViewer:{project_id}"],
            },
        ],
    }


class Buckets:
    """Cloud Storage buckets on the emulator's store and clock."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.store = emu.store

    def bucket(self, name: str, *, visible_only: bool = True) -> dict[str, Any]:
        doc = self.store.get(BUCKET_KIND, name)
        if doc is None or (visible_only and float(doc.get("_visibleAt", 0.0)) > self.emu.clock()):
            raise NotFound(NO_BUCKET)
        return doc

    def insert_bucket(
        self, *, project_id: str, number: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        name = body.get("name")
        if not name:
            raise Required("Required")
        if not _BUCKET_RE.match(name) or name.startswith("goog") or "google" in name:
            raise Invalid(f"Invalid bucket name: '{name}'")
        refuse_unmodelled(body, BUCKET_FIELDS, "bucket")
        location, location_type = _check_location(body.get("location") or "US")
        if body.get("labels") is not None:
            _check_labels(body["labels"])
        now = self.emu.clock()
        with self.store.transaction():
            existing = self.store.get(BUCKET_KIND, name)
            if existing is not None:
                raise Conflict(OWNED if existing["_project"] == project_id else TAKEN)
            doc: dict[str, Any] = {
                "kind": "storage#bucket",
                "id": name,
                "name": name,
                "projectNumber": number,
                "generation": str(next_generation(self.emu)),
                "metageneration": "1",
                "location": location,
                "locationType": location_type,
                "storageClass": body.get("storageClass") or "STANDARD",
                "timeCreated": timestamp(now),
                "updated": timestamp(now),
                "softDeletePolicy": {
                    "retentionDurationSeconds": "604800",
                    "effectiveTime": timestamp(now),
                },
                "iamConfiguration": _normalize_iam_config(body.get("iamConfiguration") or {}, now),
                "rpo": body.get("rpo") or "DEFAULT",
                "etag": etag(metageneration=1),
                "_project": project_id,
                "_visibleAt": now + self.emu.latency.duration("storage.bucket.visibility"),
            }
            for key in ("labels", "lifecycle", "versioning", "cors", "website", "logging"):
                if body.get(key) is not None:
                    doc[key] = copy.deepcopy(body[key])
            if doc.get("labels") is not None:
                doc["labels"] = {k: v for k, v in doc["labels"].items() if v is not None}
            self.store.put(BUCKET_KIND, name, doc)
            policies.set_policy(self.emu, bucket_policy_key(name), _default_policy(project_id))
            mirror.unmount(self.emu, name)  # a directory left by a forgotten state: not ours
        return doc

    def list_buckets(
        self, project_id: str, *, prefix: str, max_results: int, token: str
    ) -> tuple[list[dict[str, Any]], str]:
        """(one page of the project's buckets, the next page token or "")."""
        docs = [
            d
            for k, d in self.store.list(BUCKET_KIND, prefix)
            if d["_project"] == project_id and k > token
        ]
        page = docs[:max_results]
        return page, page[-1]["name"] if len(docs) > max_results else ""

    def patch_bucket(
        self, name: str, patch: dict[str, Any], conditions: Conditions
    ) -> dict[str, Any]:
        refuse_unmodelled(patch, BUCKET_FIELDS, "bucket")
        patch = {k: v for k, v in patch.items() if k in BUCKET_FIELDS}
        with self.store.transaction():
            doc = self.bucket(name)
            conditions.check(doc)
            if "name" in patch and patch["name"] != name:
                raise Invalid("Bucket names cannot be changed.")
            if patch.get("location") and patch["location"].upper() != doc["location"]:
                raise Invalid("The bucket's location cannot be changed.")
            if isinstance(patch.get("labels"), dict):
                _check_labels(patch["labels"])
            now = self.emu.clock()
            new = merge_patch(doc, patch)
            if "iamConfiguration" in patch:
                new["iamConfiguration"] = self._patched_iam_config(
                    doc["iamConfiguration"], patch["iamConfiguration"] or {}, now
                )
            if not new.get("labels"):
                new.pop("labels", None)
            meta = int(doc["metageneration"]) + 1
            new["metageneration"] = str(meta)
            new["etag"] = etag(metageneration=meta)
            new["updated"] = timestamp(now)
            self.store.put(BUCKET_KIND, name, new)
        return new

    @staticmethod
    def _patched_iam_config(
        was: dict[str, Any], patch: dict[str, Any], now: float
    ) -> dict[str, Any]:
        cfg = dict(patch)
        if "bucketPolicyOnly" in cfg and "uniformBucketLevelAccess" not in cfg:
            cfg["uniformBucketLevelAccess"] = cfg["bucketPolicyOnly"]
        merged = merge_patch(was, cfg)
        merged.pop("bucketPolicyOnly", None)
        out = _normalize_iam_config(merged, now)
        if (
            was["uniformBucketLevelAccess"].get("enabled")
            and out["uniformBucketLevelAccess"]["enabled"]
        ):  # keep the original lock deadline
            for key in ("bucketPolicyOnly", "uniformBucketLevelAccess"):
                out[key]["lockedTime"] = was["uniformBucketLevelAccess"]["lockedTime"]
        return out

    def delete_bucket(self, name: str, conditions: Conditions) -> None:
        """409 while any generation, live or noncurrent, remains (as on Google)."""
        with self.store.transaction():
            doc = self.bucket(name, visible_only=False)
            conditions.check(doc)
            prefix = f"{name}/"
            if (
                self.store.list(OBJECT_KIND, prefix, limit=1)
                or self.store.list(NONCURRENT_KIND, prefix, limit=1)
                or mirror.holds_files(self.emu, name)
            ):
                raise Conflict(NOT_EMPTY)
            self.store.delete(BUCKET_KIND, name)
            policies.delete_policy(self.emu, bucket_policy_key(name))
            mirror.unmount(self.emu, name)

    def legacy_acl(self, bucket: str, *, default: bool = False) -> list[dict[str, Any]]:
        """A bucket's (or its default object) ACL: the project-team entries a new bucket
        gets. Uniform bucket-level access has no ACLs to read: 400, as on Google."""
        doc = self.bucket(bucket)
        if doc["iamConfiguration"]["uniformBucketLevelAccess"]["enabled"]:
            raise Invalid(UNIFORM_ACL)
        number = doc["projectNumber"]
        kind = "storage#objectAccessControl" if default else "storage#bucketAccessControl"
        roles = (("owners", "OWNER"), ("editors", "OWNER"), ("viewers", "READER"))
        return [
            {
                "kind": kind,
                "bucket": bucket,
                "entity": f"project-{team}-{number}",
                "role": role,
                "projectTeam": {"projectNumber": number, "team": team},
                "etag": doc["etag"],
            }
            for team, role in roles
        ]

    # -- bucket IAM ------------------------------------------------------------------------

    def get_policy(self, bucket: str) -> dict[str, Any]:
        self.bucket(bucket)
        return policies.get_policy(self.emu, bucket_policy_key(bucket))

    def set_policy(self, bucket: str, policy: dict[str, Any]) -> dict[str, Any]:
        doc = self.bucket(bucket)
        ubla = doc["iamConfiguration"]["uniformBucketLevelAccess"]["enabled"]
        pap = doc["iamConfiguration"]["publicAccessPrevention"] == "enforced"
        for b in policy.get("bindings") or []:
            if b.get("condition") and not ubla:
                raise Invalid(
                    "IAM conditions can only be used on buckets with uniform bucket-level access."
                )
            if pap and {"allUsers", "allAuthenticatedUsers"} & set(b.get("members") or []):
                raise PreconditionFailed(
                    "Public access prevention is enforced on this bucket: allUsers and "
                    "allAuthenticatedUsers cannot be granted access."
                )
        try:
            return policies.set_policy(
                self.emu, bucket_policy_key(bucket), policy, conflict_code=412
            )
        except ApiError as exc:  # re-answer in storage's legacy format
            if exc.code == 412:
                raise PreconditionFailed(exc.message) from None
            raise ApiError(exc.code, exc.message, legacy=True) from None
