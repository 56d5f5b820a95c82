"""Docker images in Artifact Registry: pushed (by Cloud Build), and read as images, packages and
tags. "artifactregistry.image" is keyed by ``<repository name>/<image>@sha256:...`` (the
DockerImage JSON); "artifactregistry.tag" by the full reference
``<l>-docker.pkg.dev/<project>/<repo>/<image>:<tag>`` (what Cloud Run reads to decide whether an
image exists)."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..errors import InvalidArgument, NotFound
from ..formats import rfc3339
from .names import parse_digest_ref, parse_image_ref, registry_host, repo_name
from .repositories import IMAGE_KIND, TAG_KIND, get_repo

if TYPE_CHECKING:
    from ..context import Emulator

DEFAULT_SIZE = 52_428_800


def _not_found(name: str) -> NotFound:
    return NotFound(f"Requested entity was not found. ({name})")


def _image_of(img: dict[str, Any]) -> str:
    """The image (package) name of a DockerImage: its URI's path after the repository."""
    return str(img["uri"].split("/", 3)[3].rsplit("@", 1)[0])


class Images:
    """The images of the repository named ``name`` (``projects/<p>/locations/<l>/...``)."""

    def __init__(self, emu: Emulator, name: str) -> None:
        self.store = emu.store
        self.name = name

    def list(self, order: str = "") -> list[dict[str, Any]]:
        """``order``: the API's ``orderBy`` (``update_time`` / ``upload_time`` [``desc``])."""
        images = [v for _, v in self.store.list(IMAGE_KIND, self.name + "/")]
        if order.startswith("update_time") or order.startswith("upload_time"):
            field = "updateTime" if order.startswith("update_time") else "uploadTime"
            images.sort(key=lambda i: i[field], reverse=order.endswith("desc"))
        return images

    def get(self, image: str) -> dict[str, Any]:
        img = self.store.get(IMAGE_KIND, f"{self.name}/{image}")
        if img is None:
            raise _not_found(f"{self.name}/dockerImages/{image}")
        return img

    def packages(self) -> builtins.list[dict[str, Any]]:
        """One package per image name, by name, spanning its images' times."""
        out: dict[str, dict[str, Any]] = {}
        for img in self.list():
            image = _image_of(img)
            pkg = out.setdefault(
                image,
                {
                    "name": f"{self.name}/packages/{quote(image, safe='')}",
                    "displayName": image,
                    "createTime": img["uploadTime"],
                    "updateTime": img["updateTime"],
                },
            )
            pkg["createTime"] = min(pkg["createTime"], img["uploadTime"])
            pkg["updateTime"] = max(pkg["updateTime"], img["updateTime"])
        return [p for _, p in sorted(out.items())]

    def package(self, package: str) -> dict[str, Any]:
        for pkg in self.packages():
            if pkg["displayName"] == package:
                return pkg
        raise _not_found(f"{self.name}/packages/{package}")

    def tags(self, package: str) -> builtins.list[dict[str, Any]]:
        out = []
        for img in self.list():
            image = _image_of(img)
            if image != package:
                continue
            digest = img["uri"].rsplit("@", 1)[1]
            pkg_name = f"{self.name}/packages/{quote(image, safe='')}"
            for tag in img.get("tags", []):
                out.append(
                    {"name": f"{pkg_name}/tags/{tag}", "version": f"{pkg_name}/versions/{digest}"}
                )
        return sorted(out, key=lambda t: t["name"])

    def tag(self, package: str, tag: str) -> dict[str, Any]:
        for t in self.tags(package):
            if t["name"].rsplit("/", 1)[1] == tag:
                return t
        raise _not_found(f"{self.name}/packages/{package}/tags/{tag}")


def push_image(
    emu: Emulator, ref: str, digest: str, *, size: int = DEFAULT_SIZE, build_time: float
) -> dict[str, Any]:
    """Make ``ref`` (<l>-docker.pkg.dev/<p>/<r>/<image>:<tag>) exist with ``digest``: the
    DockerImage, its package and tag. Raises NotFound when the repository does not exist (the
    caller turns it into the push failure)."""
    parsed = parse_image_ref(ref)
    if parsed is None:
        raise InvalidArgument(f"Invalid image reference {ref}")
    location, project_id, repo, image, tag = parsed
    name = repo_name(project_id, location, repo)
    store = emu.store
    with store.transaction():
        if get_repo(emu, name) is None:
            raise NotFound(f'name unknown: Repository "{repo}" not found')
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
    """Whether ``<l>-docker.pkg.dev/<p>/<r>/<image>[:<tag>]@sha256:<hex>`` names a pushed
    image."""
    parsed = parse_digest_ref(ref)
    if parsed is None:
        return False
    location, project_id, repo, image, digest = parsed
    key = f"{repo_name(project_id, location, repo)}/{image}@{digest}"
    return emu.store.get(IMAGE_KIND, key) is not None
