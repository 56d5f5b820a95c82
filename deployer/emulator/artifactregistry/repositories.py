"""Artifact Registry repositories: created, patched and deleted, with their operations.

A repository is visible as soon as create answers (the real create is a few seconds); its
operation completes after latency "artifactregistry.repository.create". Delete removes the
repository and everything in it at once and answers an operation.
"""

from __future__ import annotations

import builtins
import fnmatch
import re
from typing import TYPE_CHECKING, Any

from .. import policies
from ..errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ..formats import check_labels, rfc3339
from ..operations import completer
from ..projects import REGIONS
from .names import registry_host, repo_name

if TYPE_CHECKING:
    from ..context import Emulator

REPO_KIND = "artifactregistry.repository"
IMAGE_KIND = "artifactregistry.image"
TAG_KIND = "artifactregistry.tag"
TYPE_PREFIX = "type.googleapis.com/google.devtools.artifactregistry.v1."
EMPTY_TYPE = "type.googleapis.com/google.protobuf.Empty"
#: Artifact Registry locations: every Cloud Run region plus the multi-regions
MULTI_REGIONS = frozenset({"us", "europe", "asia"})

_REPO_ID_RE = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_FORMATS = ("DOCKER", "MAVEN", "NPM", "APT", "YUM", "PYTHON", "GO", "GENERIC", "KFP")
_MUTABLE = ("labels", "description", "cleanupPolicies", "cleanupPolicyDryRun")


def check_location(location: str) -> None:
    if location not in REGIONS and location not in MULTI_REGIONS:
        raise InvalidArgument(f"Invalid location: {location}")


def _name_filter(flt: str) -> str | None:
    flt = flt.strip()
    if not flt:
        return None
    m = re.match(r'^name\s*=\s*"([^"]*)"$', flt) or re.match(r"^name\s*=\s*(\S+)$", flt)
    if not m:
        raise InvalidArgument(f"Invalid filter: {flt}. The fields eligible for filtering: name.")
    return m.group(1)


class Repositories:
    """A project's repositories in one location."""

    def __init__(self, emu: Emulator, project_id: str, location: str) -> None:
        self.emu = emu
        self.store = emu.store
        self.project_id = project_id
        self.location = location

    def name(self, repo: str) -> str:
        return repo_name(self.project_id, self.location, repo)

    def get(self, repo: str) -> dict[str, Any]:
        name = self.name(repo)
        found = self.store.get(REPO_KIND, name)
        if found is None:
            raise NotFound(f"Repository {name!r} not found")
        return found

    def list(self, flt: str) -> list[dict[str, Any]]:
        """The repositories whose name matches the ``name="..."`` filter (a glob), if any."""
        pattern = _name_filter(flt)
        prefix = f"projects/{self.project_id}/locations/{self.location}/repositories/"
        repos = [v for _, v in self.store.list(REPO_KIND, prefix)]
        if pattern is not None:
            repos = [r for r in repos if fnmatch.fnmatchcase(r["name"], pattern)]
        return repos

    def create(self, repo_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store the repository; answers its operation."""
        if not _REPO_ID_RE.match(repo_id):
            raise InvalidArgument(
                f"Invalid repository id {repo_id!r}: repository ids are 1-63 lowercase letters, "
                "digits or hyphens, starting with a letter and ending with a letter or digit."
            )
        fmt = body.get("format") or "FORMAT_UNSPECIFIED"
        if fmt not in _FORMATS:
            raise InvalidArgument("Repository format must be specified.")
        name = self.name(repo_id)
        now = rfc3339(self.emu.clock())
        repo: dict[str, Any] = {
            "name": name,
            "format": fmt,
            "createTime": now,
            "updateTime": now,
            "mode": body.get("mode") or "STANDARD_REPOSITORY",
            "sizeBytes": "0",
            "satisfiesPzi": False,
            "registryUri": f"{registry_host(self.location)}/{self.project_id}/{repo_id}",
        }
        if body.get("description"):
            repo["description"] = body["description"]
        labels = check_labels(body.get("labels"), what="repository")
        if labels:
            repo["labels"] = labels
        if "dockerConfig" in body:
            repo["dockerConfig"] = body["dockerConfig"]
        with self.store.transaction():
            if self.store.get(REPO_KIND, name) is not None:
                raise AlreadyExists(f"the repository already exists: {name}")
            self.store.put(REPO_KIND, name, repo)
            return self._operation("create", name)

    def patch(self, repo: str, body: dict[str, Any], mask: builtins.list[str]) -> dict[str, Any]:
        """Change the ``mask`` fields (all mutable ones in ``body`` when empty); an empty value
        removes the field."""
        fields = mask or [k for k in body if k in _MUTABLE]
        for f in fields:
            if f not in _MUTABLE:
                raise InvalidArgument(f"Invalid update mask path: {f}")
        with self.store.transaction():
            current = self.get(repo)
            for f in fields:
                value = body.get(f)
                if f == "labels":
                    value = check_labels(value, what="repository")
                if value in (None, {}, [], ""):
                    current.pop(f, None)
                else:
                    current[f] = value
            current["updateTime"] = rfc3339(self.emu.clock())
            self.store.put(REPO_KIND, self.name(repo), current)
        return current

    def delete(self, repo: str) -> dict[str, Any]:
        """Remove the repository, its images, tags and policy at once; answers its operation."""
        name = self.name(repo)
        store = self.store
        with store.transaction():
            self.get(repo)
            failure = self.emu.outcomes.take("delete", name)
            if failure is not None:  # an outcome rule: the operation fails, nothing is deleted
                return self._operation("delete", name, failure=failure)
            store.delete(REPO_KIND, name)
            for key, _ in store.list(IMAGE_KIND, name + "/"):
                store.delete(IMAGE_KIND, key)
            host_prefix = f"{registry_host(self.location)}/{self.project_id}/{repo}/"
            for key, _ in store.list(TAG_KIND, host_prefix):
                store.delete(TAG_KIND, key)
            policies.delete_policy(self.emu, name)
            return self._operation("delete", name)

    def _operation(self, verb: str, name: str, *, failure: str | None = None) -> dict[str, Any]:
        kind = f"artifactregistry.repository.{verb}"
        return self.emu.ops.start(
            completer=kind,
            duration_kind=kind,
            target=name,
            args={"project": self.project_id, "location": self.location, "failure": failure},
        )


def get_repo(emu: Emulator, name: str) -> dict[str, Any] | None:
    """The repository named ``projects/<p>/locations/<l>/repositories/<r>``, if it exists."""
    return emu.store.get(REPO_KIND, name)


@completer("artifactregistry.repository.create")
def _finish_create(emu: Emulator, op: dict[str, Any]) -> dict[str, Any]:
    repo = get_repo(emu, op["target"])
    if repo is None:  # deleted before its creation finished
        raise NotFound(f"Repository {op['target']!r} not found")
    return {"@type": TYPE_PREFIX + "Repository", **repo}


@completer("artifactregistry.repository.delete")
def _finish_delete(emu: Emulator, op: dict[str, Any]) -> dict[str, Any]:
    failure = op["args"].get("failure")
    if failure:
        raise FailedPrecondition(failure)  # nothing was deleted: nothing to undo
    return {"@type": EMPTY_TYPE}
