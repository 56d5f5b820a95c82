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

Backends (no HTTP): :mod:`.repositories` ("artifactregistry.repository", keyed by the
repository name ``projects/<id>/locations/<l>/repositories/<r>``) and :mod:`.images` (images,
packages, tags). What other APIs call is handed on here: :func:`push_image` (Cloud Build, when a
build succeeds), :func:`image_exists` and :func:`digest_exists` (Cloud Run). :mod:`.handlers`
parses, calls the backends and renders.
"""

from ..errors import ApiError
from .handlers import operation_json, router
from .images import digest_exists, image_exists, push_image
from .names import parse_image_ref

__all__ = [
    "ApiError",
    "digest_exists",
    "image_exists",
    "operation_json",
    "parse_image_ref",
    "push_image",
    "router",
]
