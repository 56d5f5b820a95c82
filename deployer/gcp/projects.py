"""Cloud Resource Manager v3: the project (its number) and the project IAM policy."""

from __future__ import annotations

import threading
from typing import Any

from deployer.gcp.context import Context, execute


class ProjectsApi:
    def __init__(self, cloud: Context) -> None:
        self.cloud = cloud
        self._number: str | None = None
        self._lock = threading.Lock()

    def _projects(self) -> Any:
        return self.cloud.clients.discovery("cloudresourcemanager", "v3").projects()

    @property
    def _resource(self) -> str:
        return f"projects/{self.cloud.project}"

    def get(self) -> dict[str, Any]:
        return self.cloud.call(
            execute(self._projects().get(name=self._resource)), key=("projects.get",)
        )

    def number(self) -> str:
        """The project number (cached: it never changes), e.g. for the service URL."""
        with self._lock:
            if self._number is None:
                self._number = self.get()["name"].removeprefix("projects/")
            return self._number

    def get_iam_policy(self) -> dict[str, Any]:
        body = {"options": {"requestedPolicyVersion": 3}}
        return self.cloud.call(
            execute(self._projects().getIamPolicy(resource=self._resource, body=body)),
            key=("projects.iam",),
        )

    def set_iam_policy(self, policy: dict[str, Any]) -> dict[str, Any]:
        return self.cloud.call(
            execute(self._projects().setIamPolicy(resource=self._resource, body={"policy": policy}))
        )
