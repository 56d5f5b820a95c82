"""Why a revision or a task cannot start, checked when its operation completes: its images must
exist in Artifact Registry, its secret env vars must name ENABLED versions that its service
account may read (a fresh grant only after ``iam.secret_grant.propagation``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import artifactregistry, policies, secretmanager
from ..errors import ApiError
from ..projects import resolve

if TYPE_CHECKING:
    from ..context import Emulator

SECRET_ACCESSOR = "roles/secretmanager.secretAccessor"
#: roles that include secretmanager.versions.access
SECRET_READ_ROLES = (SECRET_ACCESSOR, "roles/secretmanager.admin", "roles/owner", "roles/editor")
#: Google's public sample images (Artifact Registry hosted, not in any emulated project)
PUBLIC_IMAGE_PREFIXES = ("us-docker.pkg.dev/cloudrun/container/",)


def _secret_ref(ref: dict[str, Any], pid: str) -> tuple[str, str, str]:
    """(project id, secret id, version) of a secretKeyRef."""
    secret = ref.get("secret", "")
    version = ref.get("version") or "latest"
    if secret.startswith("projects/"):
        parts = secret.split("/")
        project = parts[1]
        sid = parts[3] if len(parts) > 3 else ""
        return project, sid, version
    return pid, secret, version


def _can_read_secret(emu: Emulator, project: str, secret: str, sa: str, at: float) -> bool:
    member = f"serviceAccount:{sa}"
    prop = emu.latency.duration("iam.secret_grant.propagation")
    for key in (f"projects/{project}/secrets/{secret}", f"projects/{project}"):
        for role in SECRET_READ_ROLES:
            # the grant must be in the current policy AND old enough: a record alone may be
            # left from a resource deleted and created again
            since = policies.granted_since(emu, key, role, member)
            if (
                since is not None
                and since + prop <= at
                and policies.has_binding(emu, key, role, member)
            ):
                return True
    return False


def _image_problem(emu: Emulator, image: str) -> str | None:
    host = image.split("/", 1)[0]
    if not host.endswith("-docker.pkg.dev") or image.startswith(PUBLIC_IMAGE_PREFIXES):
        return None  # only Artifact Registry images are checked
    if "@" in image:
        found = artifactregistry.digest_exists(emu, image)
    else:
        last = image.rsplit("/", 1)[-1]
        found = artifactregistry.image_exists(emu, image if ":" in last else image + ":latest")
    return None if found else f"Image '{image}' not found."


def template_problem(
    emu: Emulator, pid: str, template: dict[str, Any], at: float, who: str
) -> str | None:
    """Why a revision / task with this template cannot start, or None."""
    sa = template.get("serviceAccount", "")
    for ci, c in enumerate(template.get("containers") or []):
        problem = _image_problem(emu, c.get("image", ""))
        if problem:
            return problem
        for ei, env in enumerate(c.get("env") or []):
            ref = (env.get("valueSource") or {}).get("secretKeyRef")
            if not ref:
                continue
            project, secret, version = _secret_ref(ref, pid)
            where = f"spec.template.spec.containers[{ci}].env[{ei}].value_from.secret_key_ref.name"
            try:  # projects/<number>/secrets/... names the same secret as projects/<id>/...
                project, number = resolve(emu, project)
            except ApiError:
                number = project
                resolved = None
            else:
                resolved = secretmanager.enabled_version(emu, project, secret, version)
            path = f"projects/{number}/secrets/{secret}/versions/{resolved or version}"
            if resolved is None:
                return f"{where}: Secret {path} was not found"
            if not _can_read_secret(emu, project, secret, sa, at):
                return (
                    f"{where}: Permission denied on secret: {path} for {who} service account "
                    f"{sa}. The service account used must be granted the 'Secret Manager Secret "
                    "Accessor' role (roles/secretmanager.secretAccessor) at the secret, project "
                    "or higher level."
                )
    return None
