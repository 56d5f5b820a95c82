"""Artifact Registry v1 (discovery client): the docker repository, its IAM policy, image tags.

Repositories are addressed by their short id in ``cloud.project`` / ``cloud.region``. Every call
goes through ``cloud.call`` / ``cloud.read`` by ``_execute`` (the library's retries off: one
retry layer); create and delete start an
operation and return without waiting.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from deployer.gcp import deletes
from deployer.gcp.context import Context, execute

_IMAGE_REF = re.compile(
    r"^(?P<location>[a-z0-9-]+)-docker\.pkg\.dev/(?P<project>[^/]+)/(?P<repo>[^/]+)/"
    r"(?P<image>[^:@]+):(?P<tag>[\w][\w.-]{0,127})$"
)


def parse_image_ref(ref: str) -> dict[str, str]:
    """{"location", "project", "repo", "image", "tag"} of
    ``<location>-docker.pkg.dev/<project>/<repo>/<image>:<tag>``; ValueError otherwise."""
    m = _IMAGE_REF.match(ref)
    if not m:
        raise ValueError(
            f"not an Artifact Registry image reference: {ref!r} "
            "(expected <region>-docker.pkg.dev/<project>/<repo>/<image>:<tag>)"
        )
    return m.groupdict()


class RegistryApi:
    def __init__(self, cloud: Context) -> None:
        self.cloud = cloud

    @property
    def _repos(self) -> Any:
        return self.cloud.clients.discovery("artifactregistry", "v1").projects().locations()

    @property
    def parent(self) -> str:
        return f"projects/{self.cloud.project}/locations/{self.cloud.region}"

    def name(self, repo_id: str) -> str:
        return f"{self.parent}/repositories/{repo_id}"

    # -- repositories ------------------------------------------------------------------------

    def get_repository(self, repo_id: str) -> dict[str, Any] | None:
        return self.cloud.read(
            execute(self._repos.repositories().get(name=self.name(repo_id))),
            key=("registry.repository", repo_id),
        )

    def create_repository(
        self, repo_id: str, labels: dict[str, str], *, description: str = ""
    ) -> dict[str, Any]:
        """Start creating a DOCKER repository; returns the operation (not waited for)."""
        body: dict[str, Any] = {"format": "DOCKER", "labels": dict(labels)}
        if description:
            body["description"] = description
        return self.cloud.call(
            execute(
                self._repos.repositories().create(
                    parent=self.parent, repositoryId=repo_id, body=body
                )
            )
        )

    def patch_labels(self, repo_id: str, labels: dict[str, str]) -> dict[str, Any]:
        return self.cloud.call(
            execute(
                self._repos.repositories().patch(
                    name=self.name(repo_id), updateMask="labels", body={"labels": dict(labels)}
                )
            )
        )

    def delete_repository(self, repo_id: str) -> bool:
        """Start deleting the repository (and every image in it); False when it was absent."""
        name = self.name(repo_id)
        started = self.cloud.read(execute(self._repos.repositories().delete(name=name)))
        if started is None:
            return False
        reason = deletes.longrunning_reason(self.cloud, self._repos.operations(), started)
        deletes.started("Artifact Registry", f"repository {repo_id}", reason)
        return True

    def list_managed(self) -> list[dict[str, Any]]:
        """Repositories in the region labelled managed-by=djdeploy (the API filters by name
        only: labels are checked here)."""
        out: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"parent": self.parent, "pageSize": 1000}
            if token:
                kwargs["pageToken"] = token
            page = self.cloud.read(execute(self._repos.repositories().list(**kwargs))) or {}
            for repo in page.get("repositories", []):
                labels = repo.get("labels") or {}
                if labels.get("managed-by") == "djdeploy":
                    out.append(
                        {
                            "kind": "repository",
                            "name": repo["name"].rsplit("/", 1)[-1],
                            "labels": labels,
                        }
                    )
            token = page.get("nextPageToken")
            if not token:
                return out

    # -- IAM ---------------------------------------------------------------------------------

    def get_iam_policy(self, repo_id: str) -> dict[str, Any]:
        result = self.cloud.call(
            execute(
                self._repos.repositories().getIamPolicy(
                    resource=self.name(repo_id), options_requestedPolicyVersion=3
                )
            ),
            key=("registry.iam", repo_id),
        )
        result.setdefault("bindings", [])
        return result

    def set_iam_policy(self, repo_id: str, policy: dict[str, Any]) -> dict[str, Any]:
        result = self.cloud.call(
            execute(
                self._repos.repositories().setIamPolicy(
                    resource=self.name(repo_id), body={"policy": policy}
                )
            )
        )
        result.setdefault("bindings", [])
        return result

    # -- images ------------------------------------------------------------------------------

    def tag_exists(self, image_ref: str) -> bool:
        """Whether ``<region>-docker.pkg.dev/<project>/<repo>/<image>:<tag>`` exists (False
        when the repository or the tag does not)."""
        ref = parse_image_ref(image_ref)
        name = (
            f"projects/{ref['project']}/locations/{ref['location']}/repositories/{ref['repo']}"
            f"/packages/{quote(ref['image'], safe='')}/tags/{ref['tag']}"
        )
        found = self.cloud.read(
            execute(self._repos.repositories().packages().tags().get(name=name)),
            key=("registry.tag", name),
        )
        return found is not None
