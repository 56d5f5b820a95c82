"""Cloud Build triggers: created, read by id or name, replaced, deleted (no HTTP).

Google's rules copied: a trigger's ``name`` is 1-64 letters, digits, hyphens or underscores and
unique in its location; the server assigns ``id``, ``createTime`` and ``resourceName``; a
trigger needs an event source (the emulator serves ``github`` with ``push.branch`` or
``push.tag``) and a ``build`` or a ``filename``; a ``serviceAccount`` is checked as a build's
(it exists; the build logs to Cloud Logging only, or to a bucket). A GitHub trigger is refused
with FAILED_PRECONDITION "Repository mapping does not exist" until its repository is connected
to the project (the console's one manual step); the emulator's admin seam ``connect_github``
stands for that step. No push reaches the emulator, so triggers fire only when run
(``triggers:run``, :meth:`Triggers.build_of`): the trigger's inline ``build`` becomes a build of
its location, as its own service account, with the trigger's substitutions and GitHub's built-in
ones; it is simulated (no repository source reaches the emulator, so its steps never run here).
"""

from __future__ import annotations

import copy
import re
import uuid
from typing import TYPE_CHECKING, Any

from ..errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ..formats import rfc3339
from .builds import check_service_account, enum_names

if TYPE_CHECKING:
    from ..context import Emulator

KIND = "cloudbuild.trigger"
CONNECTION_KIND = "cloudbuild.github-connection"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_OUTPUT = ("id", "createTime", "resourceName")


def connect_github(emu: Emulator, project_id: str, repository: str) -> None:
    """Stand for the console's "connect repository": GitHub triggers on OWNER/REPO may be made."""
    emu.store.put(CONNECTION_KIND, f"{project_id}/{repository}", {"repository": repository})


class Triggers:
    """The triggers of one project and location, keyed by resource name."""

    def __init__(self, emu: Emulator, project_id: str, project_number: str, location: str) -> None:
        self.emu = emu
        self.project_id = project_id
        self.project_number = project_number
        self.parent = f"projects/{project_id}/locations/{location}"

    def _find(self, trigger: str) -> tuple[str, dict[str, Any]] | None:
        """By id or by name (Google accepts either in the path)."""
        for key, t in self.emu.store.list(KIND, self.parent + "/triggers/"):
            if trigger in (t["id"], t["name"]):
                return key, t
        return None

    def get(self, trigger: str) -> dict[str, Any]:
        found = self._find(trigger)
        if found is None:
            raise NotFound(f"trigger ({self.project_id}, {trigger}) not found")
        return found[1]

    def list(self) -> list[dict[str, Any]]:
        return [t for _, t in self.emu.store.list(KIND, self.parent + "/triggers/")]

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        trigger = {k: v for k, v in body.items() if k not in _OUTPUT}
        self._check(trigger)
        with self.emu.store.transaction():
            if self._find(trigger["name"]) is not None:
                raise AlreadyExists(
                    f"trigger ({self.project_id}, {trigger['name']}) already exists"
                )
            trigger_id = str(uuid.uuid4())
            key = f"{self.parent}/triggers/{trigger_id}"
            trigger |= {
                "id": trigger_id,
                "createTime": rfc3339(self.emu.clock()),
                "resourceName": f"{self.parent}/triggers/{trigger['name']}",
            }
            self.emu.store.put(KIND, key, trigger)
            return trigger

    def replace(self, trigger_ref: str, body: dict[str, Any]) -> dict[str, Any]:
        """UpdateBuildTrigger: the whole trigger replaced; its id, name and createTime kept."""
        with self.emu.store.transaction():
            key, old = self._find(trigger_ref) or (None, None)
            if key is None or old is None:
                raise NotFound(f"trigger ({self.project_id}, {trigger_ref}) not found")
            new = {k: v for k, v in body.items() if k not in _OUTPUT}
            if new.get("name", old["name"]) != old["name"]:
                raise InvalidArgument("a trigger's name cannot be changed")
            new["name"] = old["name"]
            self._check(new)
            new |= {k: old[k] for k in _OUTPUT}
            self.emu.store.put(KIND, key, new)
            return new

    def delete(self, trigger: str) -> None:
        with self.emu.store.transaction():
            found = self._find(trigger)
            if found is None:
                raise NotFound(f"trigger ({self.project_id}, {trigger}) not found")
            self.emu.store.delete(KIND, found[0])

    def build_of(self, trigger_ref: str, source: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """RunBuildTrigger: (the trigger's id, the build it makes) for ``source`` (a
        RepoSource: ``branchName``, ``tagName`` or ``commitSha``; without one, the branch or
        tag the trigger's push pattern names when it names exactly one)."""
        trigger = self.get(trigger_ref)
        if not trigger.get("build"):
            raise FailedPrecondition(
                f"trigger {trigger['name']} reads its build config from {trigger.get('filename')}"
                " in the repository, which the emulator cannot read: give it an inline build"
            )
        github = trigger["github"]
        refs = {k: source[k] for k in ("branchName", "tagName", "commitSha") if source.get(k)}
        if not refs:
            push = github.get("push") or {}
            kind = "tagName" if push.get("tag") else "branchName"
            literal = _literal(push.get("tag") or push.get("branch") or "")
            if literal is None:
                raise InvalidArgument(
                    f"trigger {trigger['name']} matches a pattern of refs: give "
                    "source.branchName, source.tagName or source.commitSha to run it"
                )
            refs = {kind: literal}
        built_in = {
            "TRIGGER_NAME": trigger["name"],
            "REPO_NAME": github["name"],
            "REPO_FULL_NAME": f"{github['owner']}/{github['name']}",
        }
        if "branchName" in refs:
            built_in |= {"BRANCH_NAME": refs["branchName"], "REF_NAME": refs["branchName"]}
        if "tagName" in refs:
            built_in |= {"TAG_NAME": refs["tagName"], "REF_NAME": refs["tagName"]}
        if "commitSha" in refs:
            sha = refs["commitSha"]
            built_in |= {"COMMIT_SHA": sha, "SHORT_SHA": sha[:7], "REVISION_ID": sha}
        build = copy.deepcopy(trigger["build"])
        build["substitutions"] = {
            **built_in,
            **(trigger.get("substitutions") or {}),
            **(build.get("substitutions") or {}),
            **(source.get("substitutions") or {}),
        }
        if trigger.get("serviceAccount"):
            build["serviceAccount"] = trigger["serviceAccount"]
        return str(trigger["id"]), build

    def _check(self, trigger: dict[str, Any]) -> None:
        """Google's checks; the build's option enums (numbers from GAPIC REST) become names."""
        if (trigger.get("build") or {}).get("options"):
            trigger["build"]["options"] = enum_names(trigger["build"]["options"])
        name = trigger.get("name") or ""
        if not _NAME.match(name):
            raise InvalidArgument(
                f"invalid trigger name {name!r}: 1-64 letters, digits, hyphens or underscores"
            )
        if not trigger.get("build") and not trigger.get("filename"):
            raise InvalidArgument("trigger must specify a build or a filename")
        if trigger.get("build") and not trigger["build"].get("steps"):
            raise InvalidArgument("invalid build: build must have at least one step")
        github = trigger.get("github")
        if not github:
            raise InvalidArgument("trigger must specify an event source (github)")
        push = github.get("push") or {}
        if not (github.get("owner") and github.get("name")) or not (
            push.get("branch") or push.get("tag")
        ):
            raise InvalidArgument("github trigger needs owner, name and push.branch or push.tag")
        if trigger.get("build") and trigger.get("serviceAccount"):  # the build's own rules
            check_service_account(
                self.emu, {**trigger["build"], "serviceAccount": trigger["serviceAccount"]}
            )
        repository = f"{github['owner']}/{github['name']}"
        if self.emu.store.get(CONNECTION_KIND, f"{self.project_id}/{repository}") is None:
            raise FailedPrecondition(
                "Repository mapping does not exist. Please visit "
                "https://console.cloud.google.com/cloud-build/triggers;region=global/connect"
                f"?project={self.project_number} to connect a repository to your project"
            )


def _literal(pattern: str) -> str | None:
    """The one ref an anchored pattern names (``^main$``, ``^v1\\.0$``), else None."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        return None
    inner = pattern[1:-1]
    text = re.sub(r"\\(.)", r"\1", inner)
    return text if text and re.escape(text) == inner else None
