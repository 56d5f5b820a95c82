"""Cloud Storage through google-cloud-storage: buckets, bucket IAM, objects.

Buckets come back as the JSON API's dicts (``name``, ``labels``, ``location`` upper-cased by
Google, ``iamConfiguration``...). Bucket IAM is translated to and from the IAM v1 Policy shape
({"version", "etag", "bindings": [{"role", "members": [...]}]}) so policy.py handles every
resource alike. The library's own retries are off (``retry=None``): cloud.call() retries.
"""

from __future__ import annotations

from typing import Any

from deployer.gcp.context import Context

MANAGED_LABEL = ("managed-by", "djdeploy")


class StorageApi:
    def __init__(self, cloud: Context) -> None:
        self.cloud = cloud

    @property
    def _client(self) -> Any:
        return self.cloud.clients.storage

    # -- buckets ---------------------------------------------------------------------------

    def get_bucket(self, name: str) -> dict[str, Any] | None:
        client = self._client
        return self.cloud.read(
            lambda: dict(
                client.get_bucket(
                    name, retry=None, timeout=self.cloud.clients.request_timeout
                )._properties
            ),
            key=("storage.bucket", name),
        )

    def create_bucket(
        self,
        name: str,
        *,
        location: str,
        labels: dict[str, str],
        lifecycle_rules: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A bucket with uniform bucket-level access and public access prevention enforced.
        409 (the name is taken, by us or anyone: names are global) raises errors.Conflict."""
        client = self._client

        def create() -> Any:
            bucket = client.bucket(name)
            bucket.labels = dict(labels)
            bucket.iam_configuration.uniform_bucket_level_access_enabled = True
            bucket.iam_configuration.public_access_prevention = "enforced"
            if lifecycle_rules:
                bucket.lifecycle_rules = lifecycle_rules
            return client.create_bucket(
                bucket, location=location, retry=None, timeout=self.cloud.clients.request_timeout
            )

        return dict(self.cloud.call(create)._properties)

    def patch_bucket(self, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        """PATCH with ``fields`` as a JSON merge patch (``{"labels": {"k": None}}`` removes)."""
        conn = self._client._connection
        return dict(
            self.cloud.call(
                lambda: conn.api_request(
                    method="PATCH",
                    path=f"/b/{name}",
                    data=fields,
                    retry=None,
                    timeout=self.cloud.clients.request_timeout,
                )
            )
        )

    def delete_bucket(self, name: str) -> None:
        """Delete an empty bucket (409 when it still holds objects -> errors.Conflict)."""
        client = self._client
        self.cloud.call(
            lambda: client.bucket(name).delete(
                retry=None, timeout=self.cloud.clients.request_timeout
            )
        )

    def list_buckets(self) -> list[dict[str, Any]]:
        client = self._client
        return self.cloud.call(
            lambda: [
                dict(b._properties)
                for b in client.list_buckets(
                    project=self.cloud.project,
                    retry=None,
                    timeout=self.cloud.clients.request_timeout,
                )
            ]
        )

    def list_managed(self) -> list[dict[str, Any]]:
        """Buckets of the project labelled managed-by=djdeploy (the JSON API has no label
        filter: filtered here)."""
        key, value = MANAGED_LABEL
        return [
            {"kind": "bucket", "name": b["name"], "labels": dict(b.get("labels") or {})}
            for b in self.list_buckets()
            if (b.get("labels") or {}).get(key) == value
        ]

    # -- objects ---------------------------------------------------------------------------

    def list_objects(self, bucket: str, prefix: str = "") -> list[str]:
        client = self._client
        return self.cloud.call(
            lambda: [
                b.name
                for b in client.list_blobs(
                    bucket,
                    prefix=prefix or None,
                    retry=None,
                    timeout=self.cloud.clients.request_timeout,
                )
            ]
        )

    def delete_object(
        self, bucket: str, object_name: str, *, generation: int | None = None
    ) -> None:
        """Delete one object (that generation, when given, for good); already gone counts as
        done."""
        client = self._client
        self.cloud.read(
            lambda: (
                client.bucket(bucket)
                .blob(object_name, generation=generation)
                .delete(retry=None, timeout=self.cloud.clients.request_timeout)
            )
        )

    def delete_all_objects(self, bucket: str) -> int:
        """Delete every generation in the bucket, noncurrent ones too (a versioned bucket
        keeps them, and Google refuses to delete a bucket while any remains); returns how
        many generations."""
        client = self._client
        versions = self.cloud.call(
            lambda: [
                (b.name, b.generation)
                for b in client.list_blobs(
                    bucket, versions=True, retry=None, timeout=self.cloud.clients.request_timeout
                )
            ]
        )
        for name, generation in versions:
            self.delete_object(bucket, name, generation=generation)
        return len(versions)

    def upload(self, bucket: str, object_name: str, data: bytes, *, content_type: str) -> None:
        """Upload bytes (multipart up to 8 MiB, resumable beyond: the library decides)."""
        client = self._client
        self.cloud.call(
            lambda: (
                client.bucket(bucket)
                .blob(object_name)
                .upload_from_string(
                    data,
                    content_type=content_type,
                    retry=None,
                    timeout=self.cloud.clients.request_timeout,
                )
            )
        )

    def object_exists(self, bucket: str, object_name: str) -> bool:
        client = self._client
        blob = self.cloud.read(
            lambda: client.bucket(bucket).get_blob(
                object_name, retry=None, timeout=self.cloud.clients.request_timeout
            )
        )
        return blob is not None

    def download(self, bucket: str, object_name: str) -> bytes:
        client = self._client
        return self.cloud.call(
            lambda: (
                client.bucket(bucket)
                .blob(object_name)
                .download_as_bytes(retry=None, timeout=self.cloud.clients.request_timeout)
            )
        )

    # -- IAM (IAM v1 Policy shape in and out) ----------------------------------------------

    def get_iam_policy(self, bucket: str) -> dict[str, Any]:
        conn = self._client._connection
        raw = self.cloud.call(
            lambda: conn.api_request(
                method="GET",
                path=f"/b/{bucket}/iam",
                query_params={"optionsRequestedPolicyVersion": 3},
                retry=None,
                timeout=self.cloud.clients.request_timeout,
            ),
            key=("storage.iam", bucket),
        )
        return _to_iam_v1(raw)

    def set_iam_policy(self, bucket: str, policy: dict[str, Any]) -> dict[str, Any]:
        conn = self._client._connection
        body: dict[str, Any] = {
            "resourceId": f"projects/_/buckets/{bucket}",
            "version": policy.get("version", 1),
            "bindings": [
                {k: v for k, v in b.items() if k in ("role", "members", "condition")}
                for b in policy.get("bindings", [])
            ],
        }
        if policy.get("etag"):
            body["etag"] = policy["etag"]
        raw = self.cloud.call(
            lambda: conn.api_request(
                method="PUT",
                path=f"/b/{bucket}/iam",
                data=body,
                retry=None,
                timeout=self.cloud.clients.request_timeout,
            )
        )
        return _to_iam_v1(raw)


def _to_iam_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """storage#policy -> IAM v1 Policy (drops kind/resourceId; members as sorted lists)."""
    bindings = []
    for b in raw.get("bindings") or []:
        nb: dict[str, Any] = {"role": b["role"], "members": sorted(b.get("members") or [])}
        if b.get("condition"):
            nb["condition"] = b["condition"]
        bindings.append(nb)
    return {
        "version": int(raw.get("version") or 1),
        "etag": raw.get("etag", ""),
        "bindings": bindings,
    }
