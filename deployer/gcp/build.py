"""Cloud Build v1 (google-cloud-build GAPIC client over REST): start builds, read them.

Builds run in the deployment's region (``parent=projects/<p>/locations/<region>``): logs and
the build itself stay in the region the user chose. Every call goes through ``cloud.call``
with the library's own retry off; nothing here waits on an operation: ``create_build`` starts
the build and returns it, the engine re-observes with ``get_build`` / ``list_builds``.
Builds are plain JSON-shaped dicts with camelCase keys (``status`` as the enum's name).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from deployer import errors
from deployer.gcp import retry
from deployer.gcp.context import Context
from deployer.gcp.proto import from_dict, to_dict

#: creates of a trigger whose service account Cloud Build does not see yet, at most (the retry
#: layer's backoff, 0.5 s doubling to 16 s: about two minutes, as IAM's bindings get)
ACCOUNT_ATTEMPTS = 12


def _account_not_visible(exc: BaseException) -> bool:
    """Cloud Build refuses a trigger naming a service account it does not see yet:
    400 "service account ... does not exist", for a while after the account is made."""
    text = str(exc).lower()
    return (
        isinstance(exc, errors.InvalidArgument)
        and "service account" in text
        and "does not exist" in text
    )


class BuildApi:
    def __init__(self, cloud: Context) -> None:
        self.cloud = cloud

    @property
    def _client(self) -> Any:
        return self.cloud.clients.gapic("cloudbuild")

    @property
    def parent(self) -> str:
        return f"projects/{self.cloud.project}/locations/{self.cloud.region}"

    def build_name(self, build_id: str) -> str:
        return f"{self.parent}/builds/{build_id}"

    def create_build(self, body: dict[str, Any]) -> dict[str, Any]:
        """Start a build (a Build in JSON shape) and return it as queued (with its ``id``);
        never waits for it. Not safe to repeat: MaybeApplied when it may have started a build
        unanswered (the image step finds it by its tags)."""
        from google.cloud.devtools import cloudbuild_v1

        build = cloudbuild_v1.Build.from_json(json.dumps(body), ignore_unknown_fields=False)
        clients = self.cloud.clients
        operation = self.cloud.call(  # the server names the build: not safe to repeat
            lambda: self._client.create_build(
                project_id=self.cloud.project,
                build=build,
                parent=self.parent,
                retry=None,
                timeout=clients.request_timeout,
                metadata=clients.deadline(),
            ),
            once=clients.request_timeout,
        )
        return to_dict(operation.metadata.build)

    def get_build(self, build_id: str) -> dict[str, Any] | None:
        """The build, or None when it does not exist."""
        found = self.cloud.read(
            lambda: self._client.get_build(
                request={
                    "project_id": self.cloud.project,
                    "id": build_id,
                    "name": self.build_name(build_id),
                },
                retry=None,
                timeout=self.cloud.clients.request_timeout,
            )
        )
        return None if found is None else to_dict(found)

    def list_builds(self, filter: str = "", *, limit: int = 50) -> list[dict[str, Any]]:
        """Builds of the region matching ``filter`` (e.g. ``tags="src-1234"``), newest first;
        at most ``limit`` (one page)."""

        def first() -> list[dict[str, Any]]:
            pager = self._client.list_builds(
                request={
                    "project_id": self.cloud.project,
                    "parent": self.parent,
                    "filter": filter,
                    "page_size": limit,
                },
                retry=None,
                timeout=self.cloud.clients.request_timeout,
            )
            return [to_dict(b) for b in itertools.islice(pager, limit)]

        return self.cloud.read(first, key=("build.list", self.parent, filter, limit)) or []

    # -- triggers (regional, like the builds): [ci]'s step (steps/ci.py) ---------------------

    def trigger_name(self, trigger: str) -> str:
        return f"{self.parent}/triggers/{trigger}"

    def get_trigger(self, trigger: str) -> dict[str, Any] | None:
        """The trigger named (or with id) ``trigger``, or None when there is none."""
        found = self.cloud.read(
            lambda: self._client.get_build_trigger(
                request={
                    "project_id": self.cloud.project,
                    "trigger_id": trigger,
                    "name": self.trigger_name(trigger),
                },
                retry=None,
                timeout=self.cloud.clients.request_timeout,
            ),
            key=("build.trigger", self.parent, trigger),
        )
        return None if found is None else to_dict(found)

    def create_trigger(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a trigger (a BuildTrigger in JSON shape); its name is ours, so a 409 means it
        exists (errors.Conflict). Its service account, made moments before (steps/ci.py), may
        not be seen by Cloud Build yet: that refusal is retried like a transient error, for
        about two minutes."""
        from google.cloud.devtools import cloudbuild_v1

        created = self.cloud.call(
            lambda: self._client.create_build_trigger(
                request={
                    "project_id": self.cloud.project,
                    "parent": self.parent,
                    "trigger": from_dict(cloudbuild_v1.BuildTrigger, body),
                },
                retry=None,
                timeout=self.cloud.clients.request_timeout,
            ),
            retry_on=(*retry.RETRYABLE, _account_not_visible),
            attempts=ACCOUNT_ATTEMPTS,
        )
        return to_dict(created)

    def replace_trigger(self, trigger_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace the trigger with id ``trigger_id`` by ``body`` (its name kept)."""
        from google.cloud.devtools import cloudbuild_v1

        name = self.trigger_name(body["name"])
        updated = self.cloud.call(
            lambda: self._client.update_build_trigger(
                request={
                    "project_id": self.cloud.project,
                    "trigger_id": trigger_id,
                    "trigger": from_dict(
                        cloudbuild_v1.BuildTrigger, {**body, "resourceName": name}
                    ),
                },
                retry=None,
                timeout=self.cloud.clients.request_timeout,
            )
        )
        return to_dict(updated)

    def delete_trigger(self, trigger: str) -> bool:
        """Delete; False when it was already gone."""
        try:
            self.cloud.call(
                lambda: self._client.delete_build_trigger(
                    request={
                        "project_id": self.cloud.project,
                        "trigger_id": trigger,
                        "name": self.trigger_name(trigger),
                    },
                    retry=None,
                    timeout=self.cloud.clients.request_timeout,
                )
            )
        except errors.NotFound:
            return False
        return True
