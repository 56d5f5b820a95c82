"""Artifact Registry's names: repositories, docker references, operations (pure)."""

from __future__ import annotations

import re

_IMAGE_REF_RE = re.compile(
    r"^([a-z0-9-]+)-docker\.pkg\.dev/([^/]+)/([^/]+)/([^:@]+):([\w][\w.-]{0,127})$"
)
_DIGEST_REF_RE = re.compile(
    r"^([a-z0-9-]+)-docker\.pkg\.dev/([^/]+)/([^/]+)/([^:@]+)(?::[\w][\w.-]{0,127})?"
    r"@(sha256:[0-9a-f]{64})$"
)


def repo_name(project_id: str, location: str, repo: str) -> str:
    return f"projects/{project_id}/locations/{location}/repositories/{repo}"


def registry_host(location: str) -> str:
    return f"{location}-docker.pkg.dev"


def op_name(project_id: str, location: str, op_id: str) -> str:
    return f"projects/{project_id}/locations/{location}/operations/{op_id}"


def parse_image_ref(ref: str) -> tuple[str, str, str, str, str] | None:
    """(location, project, repo, image, tag) of an Artifact Registry docker reference."""
    m = _IMAGE_REF_RE.match(ref)
    if not m:
        return None
    return m.group(1), m.group(2), m.group(3), m.group(4), m.group(5)


def parse_digest_ref(ref: str) -> tuple[str, str, str, str, str] | None:
    """(location, project, repo, image, digest) of ``<l>-docker.pkg.dev/<p>/<r>/<image>[:<tag>]
    @sha256:<hex>`` (the tag, when given, is dropped: the digest decides, as for docker)."""
    m = _DIGEST_REF_RE.match(ref)
    if not m:
        return None
    return m.group(1), m.group(2), m.group(3), m.group(4), m.group(5)
