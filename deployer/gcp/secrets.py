"""Secret Manager v1 through the GAPIC client (REST transport).

Speaks JSON-shaped dicts with camelCase keys. Every call goes through ``cloud.call`` (the one
retry policy; the library's own retries are off with ``retry=None``); reads that may 404 go
through ``cloud.read``. Secret values travel as :class:`deployer.steps.base.Secret` and are
revealed only here, when a payload is sent.
"""

from __future__ import annotations

from typing import Any

from deployer import errors
from deployer.gcp.context import Context
from deployer.gcp.proto import policy_from_dict, policy_to_dict, to_dict
from deployer.secret import Secret


def version_number(version: dict[str, Any]) -> int:
    """The number of a secret version dict (its name ends in /versions/<n>)."""
    return int(str(version.get("name", "0")).rsplit("/", 1)[-1])


def enabled_numbers(versions: list[dict[str, Any]]) -> list[int]:
    """The ENABLED version numbers, highest first."""
    return sorted(
        (version_number(v) for v in versions if v.get("state") == "ENABLED"), reverse=True
    )


def latest_enabled(versions: list[dict[str, Any]]) -> str | None:
    """The highest ENABLED version number as a string, or None when none is enabled."""
    enabled = enabled_numbers(versions)
    return str(enabled[0]) if enabled else None


def previous_enabled(versions: list[dict[str, Any]]) -> str | None:
    """The second-highest ENABLED version number (a rotated SECRET_KEY's fallback), or None."""
    enabled = enabled_numbers(versions)
    return str(enabled[1]) if len(enabled) > 1 else None


class SecretsApi:
    def __init__(self, cloud: Context) -> None:
        self.cloud = cloud

    @property
    def _client(self) -> Any:
        return self.cloud.clients.gapic("secretmanager")

    def _name(self, secret_id: str) -> str:
        return f"projects/{self.cloud.project}/secrets/{secret_id}"

    # -- secrets -------------------------------------------------------------------------------

    def get_secret(self, secret_id: str) -> dict[str, Any] | None:
        c = self._client
        return self.cloud.read(
            lambda: to_dict(
                c.get_secret(
                    request={"name": self._name(secret_id)},
                    retry=None,
                    timeout=self.cloud.clients.request_timeout,
                )
            ),
            key=("secrets.secret", secret_id),
        )

    def create_secret(self, secret_id: str, labels: dict[str, str]) -> dict[str, Any]:
        """Create the secret (automatic replication, our labels). 409 raises Conflict."""
        c = self._client
        request = {
            "parent": f"projects/{self.cloud.project}",
            "secret_id": secret_id,
            "secret": {"replication": {"automatic": {}}, "labels": dict(labels)},
        }
        return to_dict(
            self.cloud.call(
                lambda: c.create_secret(
                    request=request, retry=None, timeout=self.cloud.clients.request_timeout
                )
            )
        )

    def update_labels(self, secret_id: str, labels: dict[str, str]) -> dict[str, Any]:
        """Replace the secret's labels with ``labels``."""
        c = self._client
        request = {
            "secret": {"name": self._name(secret_id), "labels": dict(labels)},
            "update_mask": {"paths": ["labels"]},
        }
        return to_dict(
            self.cloud.call(
                lambda: c.update_secret(
                    request=request, retry=None, timeout=self.cloud.clients.request_timeout
                )
            )
        )

    def merge_labels(self, secret_id: str, labels: dict[str, str]) -> dict[str, Any] | None:
        """Set ``labels`` on the secret, keeping its other labels; None when it is absent."""
        found = self.get_secret(secret_id)
        if found is None:
            return None
        return self.update_labels(secret_id, {**(found.get("labels") or {}), **labels})

    def remove_label(self, secret_id: str, key: str) -> None:
        """Remove one label from the secret, keeping the others (absent secret or label: done)."""
        found = self.get_secret(secret_id)
        labels = dict((found or {}).get("labels") or {})
        if found is None or labels.pop(key, None) is None:
            return
        self.update_labels(secret_id, labels)

    def delete_secret(self, secret_id: str) -> bool:
        """Delete the secret and every version; False when it was already gone."""
        c = self._client
        try:
            self.cloud.call(
                lambda: c.delete_secret(
                    request={"name": self._name(secret_id)},
                    retry=None,
                    timeout=self.cloud.clients.request_timeout,
                )
            )
        except errors.NotFound:
            return False
        return True

    def list_managed(self) -> list[dict[str, Any]]:
        """Secrets labelled managed-by=djdeploy: [{"kind": "secret", "name", "labels"}]."""
        c = self._client
        request = {
            "parent": f"projects/{self.cloud.project}",
            "filter": "labels.managed-by=djdeploy",
        }
        found = self.cloud.call(
            lambda: [
                to_dict(s)
                for s in c.list_secrets(
                    request=request, retry=None, timeout=self.cloud.clients.request_timeout
                )
            ]
        )
        out = []
        for s in found:
            labels = s.get("labels") or {}
            if labels.get("managed-by") == "djdeploy":
                out.append(
                    {"kind": "secret", "name": s["name"].rsplit("/", 1)[-1], "labels": labels}
                )
        return out

    # -- versions ------------------------------------------------------------------------------

    def list_versions(self, secret_id: str) -> list[dict[str, Any]] | None:
        """Every version, newest first ({"name", "state", ...}); None when the secret is absent."""
        c = self._client
        request = {"parent": self._name(secret_id)}
        return self.cloud.read(
            lambda: [
                to_dict(v)
                for v in c.list_secret_versions(
                    request=request, retry=None, timeout=self.cloud.clients.request_timeout
                )
            ],
            key=("secrets.versions", secret_id),
        )

    def latest_version(self, secret_id: str) -> str | None:
        """The highest ENABLED version number as a string, or None (no secret or none enabled).
        Cloud Run references pin this number."""
        return latest_enabled(self.list_versions(secret_id) or [])

    def add_version(self, secret_id: str, value: Secret) -> str:
        """Add a version holding ``value``; returns its number.

        Not safe to repeat (each call adds a version): MaybeApplied when it may have added one
        unanswered. The caller then re-observes and must find that version before it adds
        anything (steps/secrets.py adds only to a secret with no version at all)."""
        import google_crc32c

        c = self._client
        clients = self.cloud.clients
        data = value.reveal().encode()
        request = {
            "parent": self._name(secret_id),
            "payload": {"data": data, "data_crc32c": int(google_crc32c.value(data))},
        }
        added = self.cloud.call(
            lambda: c.add_secret_version(
                request=request,
                retry=None,
                timeout=clients.request_timeout,
                metadata=clients.deadline(),
            ),
            once=clients.request_timeout,
        )
        return str(version_number(to_dict(added)))

    def disable_version(self, secret_id: str, version: str) -> None:
        """Disable ``version`` (a number): it can no longer be accessed, nor referenced by a new
        Cloud Run revision or execution. Disabling a disabled version changes nothing."""
        c = self._client
        name = f"{self._name(secret_id)}/versions/{version}"
        self.cloud.call(
            lambda: c.disable_secret_version(
                request={"name": name}, retry=None, timeout=self.cloud.clients.request_timeout
            )
        )

    def access(self, secret_id: str, version: str) -> Secret:
        """The payload of ``version`` (a number or "latest") as a Secret."""
        c = self._client
        name = f"{self._name(secret_id)}/versions/{version}"
        resp = self.cloud.call(
            lambda: c.access_secret_version(
                request={"name": name}, retry=None, timeout=self.cloud.clients.request_timeout
            ),
            key=("secrets.access", secret_id, version),  # a read: a later write drops it
        )
        return Secret(bytes(resp.payload.data).decode())

    # -- IAM -----------------------------------------------------------------------------------

    def get_iam_policy(self, secret_id: str) -> dict[str, Any]:
        c = self._client
        request = {"resource": self._name(secret_id), "options": {"requested_policy_version": 3}}
        return self.cloud.call(
            lambda: policy_to_dict(
                c.get_iam_policy(
                    request=request, retry=None, timeout=self.cloud.clients.request_timeout
                )
            ),
            key=("secrets.iam", secret_id),
        )

    def set_iam_policy(self, secret_id: str, policy: dict[str, Any]) -> dict[str, Any]:
        c = self._client
        request = {"resource": self._name(secret_id), "policy": policy_from_dict(policy)}
        result = self.cloud.call(
            lambda: c.set_iam_policy(
                request=request, retry=None, timeout=self.cloud.clients.request_timeout
            )
        )
        return policy_to_dict(result)
