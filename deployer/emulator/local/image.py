"""A container image as local execution keeps it: what the local Cloud Build makes and what the
local Cloud Run runs (docs/emulator.md, "Local execution").

An image is a directory ``<state>/images/<hex digest>/`` named by the digest Artifact Registry
shows for it (``sha256:<hex>``), laid out as container/Dockerfile lays out the real image, with
each absolute path of the image moved under the directory:

- ``app/``: the project (``/app``, the working directory; ``APP_HOME``)
- ``djdeploy/``: the runtime (``/opt/djdeploy``: entrypoint.sh, djdeploy_runtime/)
- ``venv/``: the virtualenv with the requirements (``/venv``); may be a symlink to a virtualenv
  shared by every image with the same requirements
- ``static/``: the collected static files (``/srv/static``)
- ``image.json``: the image config (:class:`ImageConfig`), written last: an image directory
  without it is an unfinished build and is never run.

:data:`IMAGE_PATHS` maps each in-image path to its place in the directory, so a runner rewrites
the paths it hands a process (PATH, APP_HOME, STATIC_ROOT, an args path) the same way.

An image the buildah engine built (local/buildah.py) is only ``image.json`` here (engine
``buildah``): the files are in buildah's storage, under the name the config records.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

IMAGES = "images"
CONFIG_FILE = "image.json"
#: absolute paths in the real image -> the directory of the local image that stands for them
IMAGE_PATHS = {
    "/app": "app",
    "/opt/djdeploy": "djdeploy",
    "/venv": "venv",
    "/srv/static": "static",
}


#: the engine of an image directory holding the files themselves (local/build.py)
LOCAL = "local"
#: the engine of an image built by buildah (local/buildah.py): the directory holds only
#: image.json, the image is ``ref`` in the buildah storage ``storage`` names
BUILDAH = "buildah"


@dataclass(frozen=True)
class ImageConfig:
    """The OCI config the Dockerfile gives the image (ENTRYPOINT, CMD, ENV, WORKDIR), with the
    image's own paths (``/app``...), as the real image has them. ``engine``: what built it
    (LOCAL or BUILDAH); for BUILDAH, ``ref`` is the image's name in buildah's storage and
    ``storage`` the buildah options that name that storage (empty: buildah's own), ``user``
    the image's USER."""

    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/app"
    engine: str = LOCAL
    ref: str = ""
    storage: list[str] = field(default_factory=list)
    user: str = ""


@dataclass(frozen=True)
class Image:
    """One built image on disk."""

    root: Path

    @property
    def digest(self) -> str:
        return "sha256:" + self.root.name

    @property
    def app(self) -> Path:
        return self.root / "app"

    @property
    def runtime(self) -> Path:
        return self.root / "djdeploy"

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def static(self) -> Path:
        return self.root / "static"

    def config(self) -> ImageConfig:
        data = json.loads((self.root / CONFIG_FILE).read_text())
        return ImageConfig(**data)

    def local_path(self, path: str) -> str:
        """An absolute path inside the image -> where it is here (unchanged when the image does
        not hold it, e.g. /cloudsql: the runner maps volumes itself)."""
        for inside, local in IMAGE_PATHS.items():
            if path == inside or path.startswith(inside + "/"):
                return str(self.root / local) + path[len(inside) :]
        return path


def image_root(state_dir: Path, digest: str) -> Path:
    """Where the image with this digest (``sha256:<hex>``) lives, built or not."""
    return state_dir / IMAGES / digest.removeprefix("sha256:")


def find_image(state_dir: Path, digest: str) -> Image | None:
    """The finished image with this digest, or None (never built here, or unfinished)."""
    root = image_root(state_dir, digest)
    return Image(root) if (root / CONFIG_FILE).is_file() else None


def finish_image(root: Path, config: ImageConfig) -> Image:
    """Mark a build's directory as a finished image (its config is written last)."""
    tmp = root / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(config), indent=1))
    tmp.replace(root / CONFIG_FILE)
    return Image(root)
