"""Artifact Registry's routes: parse the request, call the backend, render its answer."""

from __future__ import annotations

from typing import Any

from .. import policies
from ..errors import InvalidArgument
from ..operations import longrunning_json
from ..pagination import Paging, paginate
from ..projects import ensure_project
from ..routing import Request, Router
from ..serviceusage import require_enabled
from .images import Images
from .names import op_name
from .repositories import TYPE_PREFIX, Repositories, check_location

router = Router()

SERVICE = "artifactregistry.googleapis.com"
_PAGING = Paging(default_size=1000, max_size=1000)
_REPOS = "/v1/projects/{project}/locations/{location}/repositories"
_REPO = _REPOS + "/{repo}"


def operation_json(op: dict[str, Any]) -> dict[str, Any]:
    """A repository operation as google.longrunning.Operation."""
    a = op["args"]
    return longrunning_json(
        op,
        op_name(a["project"], a["location"], op["id"]),
        {"@type": TYPE_PREFIX + "OperationMetadata"},
    )


def _repositories(req: Request, project: str, location: str) -> Repositories:
    """The location's repositories, once the API is enabled and the location is valid."""
    p = ensure_project(req.emu, project)
    require_enabled(req.emu, p["projectId"], SERVICE)
    check_location(location)
    return Repositories(req.emu, str(p["projectId"]), location)


def _existing(req: Request, project: str, location: str, repo: str) -> str:
    """The name of an existing repository."""
    repos = _repositories(req, project, location)
    repos.get(repo)
    return repos.name(repo)


def _images(req: Request, project: str, location: str, repo: str) -> Images:
    return Images(req.emu, _existing(req, project, location, repo))


def _policy_version(req: Request) -> None:
    version = int(req.arg("options.requestedPolicyVersion") or 0)
    if version not in (0, 1, 3):
        raise InvalidArgument(f"Invalid requested policy version {version}.")


# -- repositories ----------------------------------------------------------------------------


@router.route("POST", _REPOS)
def create_repository(req: Request, project: str, location: str) -> dict[str, Any]:
    body = req.json()
    repos = _repositories(req, project, location)
    return operation_json(repos.create(req.arg("repositoryId") or "", body))


@router.route("GET", _REPO)
def get_repository(req: Request, project: str, location: str, repo: str) -> dict[str, Any]:
    return _repositories(req, project, location).get(repo)


@router.route("GET", _REPOS)
def list_repositories(req: Request, project: str, location: str) -> dict[str, Any]:
    repos = _repositories(req, project, location).list(req.arg("filter") or "")
    return paginate(req, repos, _PAGING, key="repositories")


@router.route("PATCH", _REPO)
def patch_repository(req: Request, project: str, location: str, repo: str) -> dict[str, Any]:
    body = req.json()
    repos = _repositories(req, project, location)
    mask = [m.strip() for m in (req.arg("updateMask") or "").split(",") if m.strip()]
    return repos.patch(repo, body, mask)


@router.route("DELETE", _REPO)
def delete_repository(req: Request, project: str, location: str, repo: str) -> dict[str, Any]:
    return operation_json(_repositories(req, project, location).delete(repo))


# -- IAM -------------------------------------------------------------------------------------


@router.route("GET", _REPO + ":getIamPolicy")
def get_iam_policy(req: Request, project: str, location: str, repo: str) -> dict[str, Any]:
    _policy_version(req)
    name = _existing(req, project, location, repo)
    return policies.render(policies.get_policy(req.emu, name))


@router.route("POST", _REPO + ":setIamPolicy")
def set_iam_policy(req: Request, project: str, location: str, repo: str) -> dict[str, Any]:
    policy = req.json().get("policy")
    if not isinstance(policy, dict):
        raise InvalidArgument("Request contains an invalid argument: policy is required.")
    name = _existing(req, project, location, repo)
    return policies.render(policies.set_policy(req.emu, name, policy))


# -- images, packages, tags ------------------------------------------------------------------


@router.route("GET", _REPO + "/dockerImages")
def list_docker_images(req: Request, project: str, location: str, repo: str) -> dict[str, Any]:
    images = _images(req, project, location, repo).list((req.arg("orderBy") or "").strip())
    return paginate(req, images, _PAGING, key="dockerImages")


@router.route("GET", _REPO + "/dockerImages/{image=**}")
def get_docker_image(
    req: Request, project: str, location: str, repo: str, image: str
) -> dict[str, Any]:
    return _images(req, project, location, repo).get(image)


@router.route("GET", _REPO + "/packages")
def list_packages(req: Request, project: str, location: str, repo: str) -> dict[str, Any]:
    pkgs = _images(req, project, location, repo).packages()
    return paginate(req, pkgs, _PAGING, key="packages")


@router.route("GET", _REPO + "/packages/{package}")
def get_package(
    req: Request, project: str, location: str, repo: str, package: str
) -> dict[str, Any]:
    return _images(req, project, location, repo).package(package)


@router.route("GET", _REPO + "/packages/{package}/tags")
def list_tags(req: Request, project: str, location: str, repo: str, package: str) -> dict[str, Any]:
    tags = _images(req, project, location, repo).tags(package)
    return paginate(req, tags, _PAGING, key="tags")


@router.route("GET", _REPO + "/packages/{package}/tags/{tag}")
def get_tag(
    req: Request, project: str, location: str, repo: str, package: str, tag: str
) -> dict[str, Any]:
    return _images(req, project, location, repo).tag(package, tag)
