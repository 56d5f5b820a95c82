"""Projects: created on first use, with a stable 12-digit number.

The number is derived from a hash of the project id, so separate processes and runs agree on it
without sharing state. A project can be addressed by id or, once it exists, by number
(``projects/123456789012``).
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from deployer.regions import CLOUD_RUN_REGIONS

from .errors import InvalidArgument, PermissionDenied, Unimplemented
from .formats import rfc3339

if TYPE_CHECKING:
    from .context import Emulator

REGIONS: frozenset[str] = CLOUD_RUN_REGIONS

#: 6-30 characters: lowercase letters, digits, hyphens; starts with a letter, no trailing hyphen;
#: optionally domain-scoped ("example.com:my-project")
PROJECT_ID_RE = re.compile(r"^(?:[a-z0-9.-]+\.[a-z]{2,}:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")

KIND = "project"
NUMBER_KIND = "project.number"


def project_number(project_id: str) -> str:
    """The stable 12-digit project number of ``project_id``."""
    h = int.from_bytes(hashlib.sha256(project_id.encode()).digest()[:8], "big")
    return str(100_000_000_000 + h % 900_000_000_000)


def valid_project_id(project_id: str) -> bool:
    return bool(PROJECT_ID_RE.match(project_id))


def _denied(project: str) -> PermissionDenied:
    return PermissionDenied(
        f"Permission denied on resource project {project}.",
        reason="CONSUMER_INVALID",
        metadata={"consumer": f"projects/{project}"},
    )


def get_project(emu: Emulator, project_id_or_number: str) -> dict[str, Any] | None:
    """The project if it exists (by id or number), without creating it."""
    p = project_id_or_number.removeprefix("projects/")
    if p.isdigit():
        ref = emu.store.get(NUMBER_KIND, p)
        if ref is None:
            return None
        p = ref["projectId"]
    return emu.store.get(KIND, p)


def ensure_project(emu: Emulator, project_id_or_number: str) -> dict[str, Any]:
    """The project, created on first use by id. A number must name a project already created
    (403 otherwise, as Google answers for a project you cannot see); a malformed id is 400."""
    p = project_id_or_number.removeprefix("projects/")
    if p.isdigit():
        found = get_project(emu, p)
        if found is None:
            raise _denied(p)
        return found
    if not valid_project_id(p):
        raise InvalidArgument(
            f"Invalid project id '{p}': project ids are 6 to 30 lowercase letters, digits or "
            "hyphens, start with a letter and do not end with a hyphen.",
        )
    existing = emu.store.get(KIND, p)
    if existing is not None:
        return existing
    with emu.store.transaction():
        existing = emu.store.get(KIND, p)
        if existing is not None:
            return existing
        number = project_number(p)
        now = rfc3339(emu.clock())
        project = {
            "projectId": p,
            "projectNumber": number,
            "displayName": p,
            "state": "ACTIVE",
            "createTime": now,
            "updateTime": now,
            "labels": {},
        }
        emu.store.put(KIND, p, project)
        emu.store.put(NUMBER_KIND, number, {"projectId": p})
    return project


def resolve(emu: Emulator, project_id_or_number: str) -> tuple[str, str]:
    """(project id, project number), creating the project on first use."""
    p = ensure_project(emu, project_id_or_number)
    return p["projectId"], p["projectNumber"]


UNKNOWN_LOCATION_MESSAGE = "Operation is not implemented, or supported, or enabled."


def check_location(location: str, *, regions: frozenset[str] = REGIONS) -> None:
    """Refuse a location outside ``regions`` the way Cloud Run v2 does: 501 UNIMPLEMENTED
    "Operation is not implemented, or supported, or enabled." (observed for unknown or missing
    regions; see pulumi-gcp#1078, google-cloud-dotnet#9356)."""
    if location not in regions:
        raise Unimplemented(UNKNOWN_LOCATION_MESSAGE)
