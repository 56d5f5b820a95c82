"""Artifact Registry v1: docker repositories, their images, packages and tags.

    POST   /v1/projects/{p}/locations/{l}/repositories?repositoryId=     -> Operation
    GET    /v1/projects/{p}/locations/{l}/repositories[?filter=&pageSize=&pageToken=]
    GET    /v1/projects/{p}/locations/{l}/repositories/{r}
    PATCH  /v1/projects/{p}/locations/{l}/repositories/{r}[?updateMask=]  -> Repository
    DELETE /v1/projects/{p}/locations/{l}/repositories/{r}               -> Operation
    GET    .../repositories/{r}:getIamPolicy[?options.requestedPolicyVersion=]
    POST   .../repositories/{r}:setIamPolicy                             body {"policy"}
    GET    .../repositories/{r}/dockerImages[/{image}]
    GET    .../repositories/{r}/packages[/{package}]
    GET    .../repositories/{r}/packages/{package}/tags[/{tag}]
    GET    /v1/projects/{p}/locations/{l}/operations/{id}                (served by cloudbuild.py)

State: "artifactregistry.repository" keyed by the repository name
(``projects/<id>/locations/<l>/repositories/<r>``); "artifactregistry.image" keyed by
``<repository name>/<image>@sha256:...`` (the DockerImage JSON); "artifactregistry.tag" keyed by
the full image reference ``<l>-docker.pkg.dev/<project>/<repo>/<image>:<tag>`` (what Cloud Run
reads to decide whether an image exists; :func:`push_image` writes all three, called by Cloud
Build when a build succeeds).

A repository is visible as soon as create answers (the real create is a few seconds); its
operation completes after latency "artifactregistry.repository.create". Delete removes the
repository and everything in it at once and answers an operation.
"""

from __future__ import annotations

import fnmatch
import re
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from . import policies
from .errors import ApiError
from .operations import completer, longrunning_json
from .pagination import Paging, paginate
from .projects import ensure_project
from .routing import Request, Router, rfc3339
from .serviceusage import require_enabled

if TYPE_CHECKING:
    from .context import Emulator

router = Router()

REPO_KIND = "artifactregistry.repository"
IMAGE_KIND = "artifactregistry.image"
TAG_KIND = "artifactregistry.tag"
SERVICE = "artifactregistry.googleapis.com"
TYPE_PREFIX = "type.googleapis.com/google.devtools.artifactregistry.v1."
EMPTY_TYPE = "type.googleapis.com/google.protobuf.Empty"

_REPO_ID_RE = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_LABEL_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")
_FORMATS = ("DOCKER", "MAVEN", "NPM", "APT", "YUM", "PYTHON", "GO", "GENERIC", "KFP")
_MUTABLE = ("labels", "description", "cleanupPolicies", "cleanupPolicyDryRun")

#: Artifact Registry locations: every Cloud Run region plus the multi-regions
MULTI_REGIONS = frozenset({"us", "europe", "asia"})


# -- names -----------------------------------------------------------------------------------


def repo_name(project_id: str, location: str, repo: str) -> str:
    return f"projects/{project_id}/locations/{location}/repositories/{repo}"


def registry_host(location: str) -> str:
    return f"{location}-docker.pkg.dev"


def image_ref(location: str, project_id: str, repo: str, image: str, tag: str) -> str:
    """The full reference Cloud Run and docker use: <l>-docker.pkg.dev/<p>/<r>/<image>:<tag>."""
    return f"{registry_host(location)}/{project_id}/{repo}/{image}:{tag}"


def parse_image_ref(ref: str) -> tuple[str, str, str, str, str] | None:
    """(location, project, repo, image, tag) of an Artifact Registry docker reference."""
    m = re.match(
        r"^([a-z0-9-]+)-docker\.pkg\.dev/([^/]+)/([^/]+)/([^:@]+):([\w][\w.-]{0,127})$", ref
    )
    if not m:
        return None
    return m.group(1), m.group(2), m.group(3), m.group(4), m.group(5)


def _check_location(location: str) -> None:
    from .projects import REGIONS

    if location not in REGIONS and location not in MULTI_REGIONS:
        raise ApiError(400, f"Invalid location: {location}", status="INVALID_ARGUMENT")


def _project(req: Request, project: str, location: str) -> str:
    p = ensure_project(req.emu, project)
    require_enabled(req.emu, p["projectId"], SERVICE)
    _check_location(location)
    return str(p["projectId"])


def _not_found(name: str) -> ApiError:
    return ApiError(404, f"Requested entity was not found. ({name})")


def _repo_not_found(name: str) -> ApiError:
    return ApiError(404, f"Repository {name!r} not found")


def get_repo(emu: Emulator, name: str) -> dict[str, Any] | None:
    return emu.store.get(REPO_KIND, name)


def _require_repo(emu: Emulator, name: str) -> dict[str, Any]:
    repo = get_repo(emu, name)
    if repo is None:
        raise _repo_not_found(name)
    return repo


def _check_labels(labels: Any) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise ApiError(400, "Invalid JSON payload received. 'labels' must be an object.")
    if len(labels) > 64:
        raise ApiError(400, "A repository can have at most 64 labels.")
    for k, v in labels.items():
        if not _LABEL_KEY_RE.match(k) or not isinstance(v, str) or not _LABEL_VALUE_RE.match(v):
            raise ApiError(400, f"Invalid label {k}={v!r}.")
    return dict(labels)


# -- operations ------------------------------------------------------------------------------


def op_name(project_id: str, location: str, op_id: str) -> str:
    return f"projects/{project_id}/locations/{location}/operations/{op_id}"


def op_json(op: dict[str, Any]) -> dict[str, Any]:
    a = op["args"]
    return longrunning_json(
        op,
        op_name(a["project"], a["location"], op["id"]),
        {"@type": TYPE_PREFIX + "OperationMetadata"},
    )


@completer("artifactregistry.repository.create")
def _finish_create(emu: Emulator, op: dict[str, Any]) -> dict[str, Any]:
    repo = get_repo(emu, op["target"])
    if repo is None:  # deleted before its creation finished
        raise ApiError(404, f"Repository {op['target']!r} not found")
    return {"@type": TYPE_PREFIX + "Repository", **repo}


@completer("artifactregistry.repository.delete")
def _finish_delete(emu: Emulator, op: dict[str, Any]) -> dict[str, Any]:
    return {"@type": EMPTY_TYPE}


# -- repositories ----------------------------------------------------------------------------


@router.route("POST", "/v1/projects/{project}/locations/{location}/repositories")
def create_repository(req: Request, project: str, location: str) -> dict[str, Any]:
    body = req.json()
    project_id = _project(req, project, location)
    repo_id = req.arg("repositoryId") or ""
    if not _REPO_ID_RE.match(repo_id):
        raise ApiError(
            400,
            f"Invalid repository id {repo_id!r}: repository ids are 1-63 lowercase letters, "
            "digits or hyphens, starting with a letter and ending with a letter or digit.",
        )
    fmt = body.get("format") or "FORMAT_UNSPECIFIED"
    if fmt not in _FORMATS:
        raise ApiError(400, "Repository format must be specified.")
    name = repo_name(project_id, location, repo_id)
    now = rfc3339(req.emu.clock())
    repo: dict[str, Any] = {
        "name": name,
        "format": fmt,
        "createTime": now,
        "updateTime": now,
        "mode": body.get("mode") or "STANDARD_REPOSITORY",
        "sizeBytes": "0",
        "satisfiesPzi": False,
        "registryUri": f"{registry_host(location)}/{project_id}/{repo_id}",
    }
    if body.get("description"):
        repo["description"] = body["description"]
    labels = _check_labels(body.get("labels"))
    if labels:
        repo["labels"] = labels
    if "dockerConfig" in body:
        repo["dockerConfig"] = body["dockerConfig"]
    store = req.emu.store
    with store.transaction():
        if store.get(REPO_KIND, name) is not None:
            raise ApiError(409, f"the repository already exists: {name}")
        store.put(REPO_KIND, name, repo)
        op = req.emu.ops.start(
            completer="artifactregistry.repository.create",
            duration_kind="artifactregistry.repository.create",
            target=name,
            args={"project": project_id, "location": location},
            op_id=str(uuid.uuid4()),
        )
    return op_json(op)


@router.route("GET", "/v1/projects/{project}/locations/{location}/repositories/{repo}")
def get_repository(req: Request, project: str, location: str, repo: str) -> dict[str, Any]:
    project_id = _project(req, project, location)
    return _require_repo(req.emu, repo_name(project_id, location, repo))


def _name_filter(flt: str) -> str | None:
    flt = flt.strip()
    if not flt:
        return None
    m = re.match(r'^name\s*=\s*"([^"]*)"$', flt) or re.match(r"^name\s*=\s*(\S+)$", flt)
    if not m:
        raise ApiError(400, f"Invalid filter: {flt}. The fields eligible for filtering: name.")
    return m.group(1)


_PAGING = Paging(default_size=1000, max_size=1000)


@router.route("GET", "/v1/projects/{project}/locations/{location}/repositories")
def list_repositories(req: Request, project: str, location: str) -> dict[str, Any]:
    project_id = _project(req, project, location)
    pattern = _name_filter(req.arg("filter") or "")
    prefix = f"projects/{project_id}/locations/{location}/repositories/"
    repos = [v for _, v in req.emu.store.list(REPO_KIND, prefix)]
    if pattern is not None:
        repos = [r for r in repos if fnmatch.fnmatchcase(r["name"], pattern)]
    return paginate(req, repos, _PAGING, key="repositories")


@router.route("PATCH", "/v1/projects/{project}/locations/{location}/repositories/{repo}")
def patch_repository(req: Request, project: str, location: str, repo: str) -> dict[str, Any]:
    body = req.json()
    project_id = _project(req, project, location)
    name = repo_name(project_id, location, repo)
    mask = [m.strip() for m in (req.arg("updateMask") or "").split(",") if m.strip()]
    fields = mask or [k for k in body if k in _MUTABLE]
    for f in fields:
        if f not in _MUTABLE:
            raise ApiError(400, f"Invalid update mask path: {f}")
    with req.emu.store.transaction():
        current = _require_repo(req.emu, name)
        for f in fields:
            value = body.get(f)
            if f == "labels":
                value = _check_labels(value)
            if value in (None, {}, [], ""):
                current.pop(f, None)
            else:
                current[f] = value
        current["updateTime"] = rfc3339(req.emu.clock())
        req.emu.store.put(REPO_KIND, name, current)
    return current


@router.route("DELETE", "/v1/projects/{project}/locations/{location}/repositories/{repo}")
def delete_repository(req: Request, project: str, location: str, repo: str) -> dict[str, Any]:
    project_id = _project(req, project, location)
    name = repo_name(project_id, location, repo)
    store = req.emu.store
    with store.transaction():
        _require_repo(req.emu, name)
        store.delete(REPO_KIND, name)
        for key, _ in store.list(IMAGE_KIND, name + "/"):
            store.delete(IMAGE_KIND, key)
        host_prefix = f"{registry_host(location)}/{project_id}/{repo}/"
        for key, _ in store.list(TAG_KIND, host_prefix):
            store.delete(TAG_KIND, key)
        policies.delete_policy(req.emu, name)
        op = req.emu.ops.start(
            completer="artifactregistry.repository.delete",
            duration_kind="artifactregistry.repository.delete",
            target=name,
            args={"project": project_id, "location": location},
            op_id=str(uuid.uuid4()),
        )
    return op_json(op)


# -- IAM -------------------------------------------------------------------------------------


@router.route("GET", "/v1/projects/{project}/locations/{location}/repositories/{repo}:getIamPolicy")
def get_iam_policy(req: Request, project: str, location: str, repo: str) -> dict[str, Any]:
    version = int(req.arg("options.requestedPolicyVersion") or 0)
    if version not in (0, 1, 3):
        raise ApiError(400, f"Invalid requested policy version {version}.")
    project_id = _project(req, project, location)
    name = repo_name(project_id, location, repo)
    _require_repo(req.emu, name)
    return policies.render(policies.get_policy(req.emu, name))


@router.route(
    "POST", "/v1/projects/{project}/locations/{location}/repositories/{repo}:setIamPolicy"
)
def set_iam_policy(req: Request, project: str, location: str, repo: str) -> dict[str, Any]:
    policy = req.json().get("policy")
    if not isinstance(policy, dict):
        raise ApiError(400, "Request contains an invalid argument: policy is required.")
    project_id = _project(req, project, location)
    name = repo_name(project_id, location, repo)
    _require_repo(req.emu, name)
    return policies.render(policies.set_policy(req.emu, name, policy))


# -- images, packages, tags ------------------------------------------------------------------


def push_image(
    emu: Emulator, ref: str, digest: str, *, size: int = 52_428_800, build_time: float
) -> dict[str, Any]:
    """Make ``ref`` (<l>-docker.pkg.dev/<p>/<r>/<image>:<tag>) exist with ``digest``: the
    DockerImage, its package and tag. Raises ApiError(404) when the repository does not exist
    (the caller turns it into the push failure)."""
    parsed = parse_image_ref(ref)
    if parsed is None:
        raise ApiError(400, f"Invalid image reference {ref}")
    location, project_id, repo, image, tag = parsed
    name = repo_name(project_id, location, repo)
    store = emu.store
    with store.transaction():
        if get_repo(emu, name) is None:
            raise ApiError(404, f'name unknown: Repository "{repo}" not found')
        now = rfc3339(emu.clock())
        # a tag names one digest: move it off the image that had it
        for key, img in store.list(IMAGE_KIND, f"{name}/{image}@"):
            if tag in img.get("tags", []) and not key.endswith(digest):
                img["tags"] = [t for t in img["tags"] if t != tag]
                if not img["tags"]:
                    img.pop("tags")
                store.put(IMAGE_KIND, key, img)
        key = f"{name}/{image}@{digest}"
        img = store.get(IMAGE_KIND, key) or {
            "name": f"{name}/dockerImages/{quote(image, safe='')}@{digest}",
            "uri": f"{registry_host(location)}/{project_id}/{repo}/{image}@{digest}",
            "imageSizeBytes": str(size),
            "uploadTime": now,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "buildTime": rfc3339(build_time),
        }
        img["tags"] = sorted({*img.get("tags", []), tag})
        img["updateTime"] = now
        store.put(IMAGE_KIND, key, img)
        record = {
            "repository": name,
            "image": image,
            "tag": tag,
            "digest": digest,
            "createTime": now,
        }
        store.put(TAG_KIND, ref, record)
    return img


def image_exists(emu: Emulator, ref: str) -> bool:
    """Whether ``ref`` names an image pushed to an existing repository (Cloud Run's check)."""
    return emu.store.get(TAG_KIND, ref) is not None


def digest_exists(emu: Emulator, ref: str) -> bool:
    """Whether ``<l>-docker.pkg.dev/<p>/<r>/<image>[:<tag>]@sha256:<hex>`` names a pushed image
    (the tag, when given, is ignored: the digest decides, as for docker)."""
    m = re.match(
        r"^([a-z0-9-]+)-docker\.pkg\.dev/([^/]+)/([^/]+)/([^:@]+)(?::[\w][\w.-]{0,127})?"
        r"@(sha256:[0-9a-f]{64})$",
        ref,
    )
    if not m:
        return False
    location, project_id, repo, image, digest = m.groups()
    key = f"{repo_name(project_id, location, repo)}/{image}@{digest}"
    return emu.store.get(IMAGE_KIND, key) is not None


def _images(emu: Emulator, name: str) -> list[dict[str, Any]]:
    return [v for _, v in emu.store.list(IMAGE_KIND, name + "/")]


@router.route("GET", "/v1/projects/{project}/locations/{location}/repositories/{repo}/dockerImages")
def list_docker_images(req: Request, project: str, location: str, repo: str) -> dict[str, Any]:
    project_id = _project(req, project, location)
    name = repo_name(project_id, location, repo)
    _require_repo(req.emu, name)
    images = _images(req.emu, name)
    order = (req.arg("orderBy") or "").strip()
    if order.startswith("update_time") or order.startswith("upload_time"):
        field = "updateTime" if order.startswith("update_time") else "uploadTime"
        images.sort(key=lambda i: i[field], reverse=order.endswith("desc"))
    return paginate(req, images, _PAGING, key="dockerImages")


@router.route(
    "GET",
    "/v1/projects/{project}/locations/{location}/repositories/{repo}/dockerImages/{image=**}",
)
def get_docker_image(
    req: Request, project: str, location: str, repo: str, image: str
) -> dict[str, Any]:
    project_id = _project(req, project, location)
    name = repo_name(project_id, location, repo)
    _require_repo(req.emu, name)
    img = req.emu.store.get(IMAGE_KIND, f"{name}/{image}")
    if img is None:
        raise _not_found(f"{name}/dockerImages/{image}")
    return img


def _packages(emu: Emulator, name: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for img in _images(emu, name):
        image = img["uri"].split("/", 3)[3].rsplit("@", 1)[0]
        pkg = out.setdefault(
            image,
            {
                "name": f"{name}/packages/{quote(image, safe='')}",
                "displayName": image,
                "createTime": img["uploadTime"],
                "updateTime": img["updateTime"],
            },
        )
        pkg["createTime"] = min(pkg["createTime"], img["uploadTime"])
        pkg["updateTime"] = max(pkg["updateTime"], img["updateTime"])
    return out


@router.route("GET", "/v1/projects/{project}/locations/{location}/repositories/{repo}/packages")
def list_packages(req: Request, project: str, location: str, repo: str) -> dict[str, Any]:
    project_id = _project(req, project, location)
    name = repo_name(project_id, location, repo)
    _require_repo(req.emu, name)
    pkgs = [p for _, p in sorted(_packages(req.emu, name).items())]
    return paginate(req, pkgs, _PAGING, key="packages")


@router.route(
    "GET", "/v1/projects/{project}/locations/{location}/repositories/{repo}/packages/{package}"
)
def get_package(
    req: Request, project: str, location: str, repo: str, package: str
) -> dict[str, Any]:
    project_id = _project(req, project, location)
    name = repo_name(project_id, location, repo)
    _require_repo(req.emu, name)
    pkg = _packages(req.emu, name).get(package)
    if pkg is None:
        raise _not_found(f"{name}/packages/{package}")
    return pkg


def _tags(emu: Emulator, name: str, package: str) -> list[dict[str, Any]]:
    out = []
    for img in _images(emu, name):
        image = img["uri"].split("/", 3)[3].rsplit("@", 1)[0]
        if image != package:
            continue
        digest = img["uri"].rsplit("@", 1)[1]
        pkg_name = f"{name}/packages/{quote(image, safe='')}"
        for tag in img.get("tags", []):
            out.append(
                {"name": f"{pkg_name}/tags/{tag}", "version": f"{pkg_name}/versions/{digest}"}
            )
    return sorted(out, key=lambda t: t["name"])


@router.route(
    "GET",
    "/v1/projects/{project}/locations/{location}/repositories/{repo}/packages/{package}/tags",
)
def list_tags(req: Request, project: str, location: str, repo: str, package: str) -> dict[str, Any]:
    project_id = _project(req, project, location)
    name = repo_name(project_id, location, repo)
    _require_repo(req.emu, name)
    return paginate(req, _tags(req.emu, name, package), _PAGING, key="tags")


@router.route(
    "GET",
    "/v1/projects/{project}/locations/{location}/repositories/{repo}/packages/{package}/tags/{tag}",
)
def get_tag(
    req: Request, project: str, location: str, repo: str, package: str, tag: str
) -> dict[str, Any]:
    project_id = _project(req, project, location)
    name = repo_name(project_id, location, repo)
    _require_repo(req.emu, name)
    for t in _tags(req.emu, name, package):
        if t["name"].rsplit("/", 1)[1] == tag:
            return t
    raise _not_found(f"{name}/packages/{package}/tags/{tag}")
