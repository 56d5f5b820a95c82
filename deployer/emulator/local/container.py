"""What a container of a Cloud Run template becomes locally: the argv, env and working directory
of a process (docs/emulator.md, "Local execution", "Jobs and services").

There is no container, so paths move: the image's own paths (``/app``, ``/venv``...) are the
image directory's (:meth:`Image.local_path`), and each volume's ``mountPath`` is a directory of
the state dir (``/cloudsql`` -> the Cloud SQL connector layout, a GCS volume -> the bucket's
directory). Every env value and argument that is an absolute path under a mount or an image
path is rewritten to its local place (PATH-like values element by element); a mount wins over
an image path it lies under (``/app/media``).

Inputs arrive resolved (secret values included: they go into the env only, never into argv or
a file): this module knows nothing of the APIs.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .image import Image, ImageConfig
from .processes import Spec

#: env variables whose value is a list of paths
PATH_LISTS = ("PATH", "PYTHONPATH")
#: a unix socket path must fit this (the Cloud SQL layout's sockets are under /cloudsql)
SOCKET_PATH_MAX = 107
SOCKET_NAME = ".s.PGSQL.5432"


def _link(path: Path) -> Path:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"djdeploy-m-{digest}"


def short_dir(path: Path, *, names: list[str]) -> Path:
    """``path``, or a short symlink to it (``/tmp/djdeploy-m-<hash>``) when the socket of one
    of the ``names`` under it (``<path>/<name>/.s.PGSQL.5432``) would not fit the unix socket
    path limit."""
    longest = max((len(n) for n in names), default=0) + len(SOCKET_NAME) + 2
    if len(str(path)) + longest <= SOCKET_PATH_MAX:
        return path
    link = _link(path)
    if not (link.is_symlink() and os.readlink(link) == str(path)):
        link.unlink(missing_ok=True)
        link.symlink_to(path)
    return link


def release_short_dir(path: Path) -> None:
    """Remove the short symlink :func:`short_dir` may have made for ``path``."""
    link = _link(path)
    if link.is_symlink() and os.readlink(link) == str(path):
        link.unlink()


class Paths:
    """In-container absolute paths -> local ones: the mounts, then the image."""

    def __init__(self, image: Image, mounts: Mapping[str, Path]) -> None:
        self.image = image
        # longest mount path first, so that /app/media wins over a mount at /app
        self.mounts = sorted(
            ((m.rstrip("/") or "/", p) for m, p in mounts.items()), key=lambda m: -len(m[0])
        )

    def local(self, path: str) -> str:
        """``path`` moved to its local place (unchanged when nothing holds it)."""
        if not path.startswith("/"):
            return path
        for mount, where in self.mounts:
            if path == mount or path.startswith(mount + "/"):
                return str(where) + path[len(mount) :]
        return self.image.local_path(path)

    def value(self, name: str, value: str) -> str:
        if name in PATH_LISTS:
            return ":".join(self.local(p) for p in value.split(":"))
        return self.local(value)


@dataclass(frozen=True)
class ContainerRun:
    """A container to run as a process, what every way of running one takes
    (:func:`process_spec`, ``Buildah.process_spec``): ``container`` (a Cloud Run v2 container:
    command, args, workingDir) of ``image``; ``env``: the template's env, resolved, in order;
    ``platform_env``: what Cloud Run adds (PORT, K_SERVICE, CLOUD_RUN_TASK_INDEX...), set last
    as Cloud Run does; ``mounts``: mountPath -> local directory; ``what`` names the process."""

    image: Image
    container: Mapping[str, object]
    what: str
    env: Mapping[str, str] = field(default_factory=dict)
    platform_env: Mapping[str, str] = field(default_factory=dict)
    mounts: Mapping[str, Path] = field(default_factory=dict)


#: a way of running a container (in place, or in the image with buildah)
SpecMaker = Callable[[ContainerRun], Spec]


def process_spec(run: ContainerRun) -> Spec:
    """The process for ``run.container``, the image's paths moved to the image directory."""
    config = run.image.config()
    paths = Paths(run.image, run.mounts)
    merged: dict[str, str] = {"HOME": config.workdir}
    merged.update(config.env)
    merged.update(run.env)
    merged.update(run.platform_env)
    local_env = {name: paths.value(name, value) for name, value in merged.items()}
    if "PATH" not in local_env:
        local_env["PATH"] = os.defpath
    workdir = str(run.container.get("workingDir") or config.workdir)
    return Spec(
        argv=[paths.local(a) for a in container_argv(config, run.container)],
        env=local_env,
        cwd=Path(paths.local(workdir)),
        what=run.what,
    )


def container_argv(config: ImageConfig, container: Mapping[str, object]) -> list[str]:
    """What the container runs, as in the image: the template's ``command`` + ``args``, else
    the image's ENTRYPOINT + (``args``, else CMD); nothing at all: a shell."""
    command = _strings(container.get("command"))
    args = _strings(container.get("args"))
    argv = [*command, *args] if command else [*config.entrypoint, *(args or config.cmd)]
    return argv or ["/bin/sh"]


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []
