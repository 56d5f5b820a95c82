"""The buildah engine (docs/emulator.md, "Local execution", "The buildah engine"): opt-in with
``DJDEPLOY_EMULATOR_ENGINE=buildah``, Cloud Build builds the project's real Dockerfile with
buildah, and Cloud Run's tasks and instances run in that image.

The build: ``buildah build --isolation chroot --network host --pull=never --layers`` of the
unpacked source archive, tagged ``localhost/djdeploy-emulator:<hex>`` (``<hex>``: the digest
Artifact Registry shows, so the image reference Cloud Run is given names it); pip in the RUN
steps trusts the machine's CA bundle (mounted read-only, ``PIP_CERT``). The base images must be
in buildah's storage already (no registry is assumed): a missing one fails the build naming it
and how to make it. The image's config is read back into ``<state>/images/<hex>/image.json``
(engine ``buildah``), which is what the runner starts from.

A process: ``buildah run --isolation chroot --network host`` in a working container of the
image (one per image and state dir, made on first use, kept for the next start, removed by a
reset), the volumes bind-mounted at their ``mountPath``; the env (secrets included) is handed to
``/bin/sh -s`` on stdin as ``export`` lines, so it is in no argv and no file. Everything runs in
the process group the supervisor made, so a SIGTERM to the group stops the container's
processes (``buildah run`` then returns; SIGTERM to ``buildah run`` alone makes it panic).

``DJDEPLOY_EMULATOR_BUILDAH_ROOT=DIR``: buildah's storage is ``DIR/storage`` (run root
``DIR/run``, overlay), the layout tests/container/real_image.sh keeps its base in; unset:
buildah's own configured storage.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from .container import ContainerRun, container_argv
from .dockerfile import base_images
from .image import BUILDAH, Image, ImageConfig
from .processes import Spec

ENGINE_VAR = "DJDEPLOY_EMULATOR_ENGINE"
ROOT_VAR = "DJDEPLOY_EMULATOR_BUILDAH_ROOT"
ENGINES = ("local", BUILDAH)
#: the image a build makes: the digest's hex as the tag
REF = "localhost/djdeploy-emulator:{hex}"
#: the CA bundle pip trusts in a build: the machine's, mounted here (docs/container.md)
CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
CA_IN_BUILD = "/run/djdeploy/ca.crt"
#: host variables buildah itself keeps (its storage and registries configuration among them)
HOST_ENV = ("PATH", "HOME", "TMPDIR", "LANG", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "USER")
HOST_PREFIXES = ("CONTAINERS_", "BUILDAH_")
#: how long a short buildah command (inspect, from, rm) may take
QUICK_SECONDS = 120.0
#: how to get the base when it is missing (the recipe of docs/container.md)
BASE_MISSING = (
    "the base image {image} is not in buildah's storage{where} and the emulator pulls nothing: "
    "`buildah pull {image}` where a registry is reachable, or make the stand-in for "
    "python:3.11-slim-bookworm with tests/container/real_image.sh (debootstrap; it keeps it in "
    "/var/cache/djdeploy-real-image: set {root_var}=/var/cache/djdeploy-real-image), or unset "
    '{engine_var} to build without an engine (docs/emulator.md, "The buildah engine")'
)
NO_BUILDAH = (
    "{engine_var}=buildah but buildah is not installed: `apt-get install buildah`, or unset "
    '{engine_var} to build without an engine (docs/emulator.md, "The buildah engine")'
)


class EngineMissing(Exception):
    """What the build needs and does not find (buildah, a base image): the message says how to
    get it."""


def engine_from(environ: Mapping[str, str]) -> tuple[str, str | None]:
    """The engine ``environ`` asks for (``local`` or ``buildah``), and what is wrong with the
    setting (an unknown value: the engine-less build is used), or None."""
    value = environ.get(ENGINE_VAR, "").strip().lower() or "local"
    if value in ENGINES:
        return value, None
    return "local", (
        f"{ENGINE_VAR}={value!r} is not an engine: local (the default) or buildah; "
        "building without an engine"
    )


class Buildah:
    """buildah, on the storage ``root`` names (None: buildah's own configuration)."""

    def __init__(self, *, root: Path | None) -> None:
        self.storage = (
            []
            if root is None
            else [
                "--root",
                str(root / "storage"),
                "--runroot",
                str(root / "run"),
                "--storage-driver",
                "overlay",
            ]
        )
        self._lock = threading.Lock()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Buildah:
        root = environ.get(ROOT_VAR, "").strip()
        return cls(root=Path(root) if root else None)

    @staticmethod
    def env() -> dict[str, str]:
        """buildah's own environment: nothing of it reaches a build step or a container."""
        return {k: v for k, v in os.environ.items() if k in HOST_ENV or k.startswith(HOST_PREFIXES)}

    @staticmethod
    def binary() -> str:
        found = shutil.which("buildah")
        if found is None:
            raise EngineMissing(NO_BUILDAH.format(engine_var=ENGINE_VAR))
        return found

    def _quick(
        self, *args: str, storage: list[str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.binary(), *(self.storage if storage is None else storage), *args]
        try:
            return subprocess.run(
                argv,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=QUICK_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(argv, 124, "", f"no answer in {QUICK_SECONDS} s")

    def has_image(self, ref: str, *, storage: list[str] | None = None) -> bool:
        return self._quick("inspect", "--type", "image", ref, storage=storage).returncode == 0

    # -- building ------------------------------------------------------------------------------

    def build(
        self,
        *,
        context: Path,
        dockerfile: str,
        build_args: Mapping[str, str],
        digest: str,
        run: Callable[[list[str]], None],
    ) -> ImageConfig:
        """Build ``context`` with its ``dockerfile`` (a path in it) into the image the digest
        names; ``run`` runs the build command (its output into the build's log). The config
        is the built image's own."""
        for base in base_images((context / dockerfile).read_text(), dict(build_args)):
            if not self.has_image(base):
                where = f" ({self.storage[1]})" if self.storage else ""
                raise EngineMissing(
                    BASE_MISSING.format(
                        image=base, where=where, root_var=ROOT_VAR, engine_var=ENGINE_VAR
                    )
                )
        ref = REF.format(hex=digest.removeprefix("sha256:"))
        argv = [self.binary(), *self.storage, "build", "--isolation", "chroot"]
        argv += ["--network", "host", "--pull=never", "--layers", "--force-rm"]
        for name, value in build_args.items():
            argv += ["--build-arg", f"{name}={value}"]
        ca = next((c for c in CA_BUNDLES if Path(c).is_file()), None)
        if ca is not None and "PIP_CERT" not in build_args:
            argv += ["--volume", f"{ca}:{CA_IN_BUILD}:ro", "--build-arg", f"PIP_CERT={CA_IN_BUILD}"]
        run([*argv, "-f", dockerfile, "-t", ref, str(context)])
        return self._config(ref)

    def _config(self, ref: str) -> ImageConfig:
        done = self._quick("inspect", "--type", "image", ref)
        if done.returncode != 0:
            raise EngineMissing(f"buildah inspect {ref}: {done.stderr.strip()}")
        data = json.loads(done.stdout)["OCIv1"].get("config") or {}
        env = dict(str(e).partition("=")[::2] for e in data.get("Env") or [])
        return ImageConfig(
            entrypoint=list(data.get("Entrypoint") or []),
            cmd=list(data.get("Cmd") or []),
            env=env,
            workdir=str(data.get("WorkingDir") or "/"),
            engine=BUILDAH,
            ref=ref,
            storage=list(self.storage),
            user=str(data.get("User") or ""),
        )

    def remove_image(self, config: ImageConfig, *, root: Path) -> None:
        """Remove the image's working container and the image (a reset)."""
        with contextlib.suppress(EngineMissing):
            self._quick("rm", container_name(root), storage=config.storage)
            self._quick("rmi", config.ref, storage=config.storage)

    # -- running -------------------------------------------------------------------------------

    def _container(self, image: Image, config: ImageConfig) -> str:
        """The image's working container (made on first use; one left by an emulator that
        stopped is used again). OSError when there is none: the task or instance cannot
        start, as a container whose image is gone."""
        name = container_name(image.root)
        try:
            self.binary()
        except EngineMissing:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), "buildah") from None
        with self._lock:
            if self._quick(
                "inspect", "--type", "container", name, storage=config.storage
            ).returncode:
                made = self._quick(
                    "from", "--pull-never", "--name", name, config.ref, storage=config.storage
                )
                if made.returncode != 0:
                    detail = made.stderr.strip() or "buildah from failed"
                    raise OSError(errno.ENOENT, detail, config.ref)
        return name

    def process_spec(self, run: ContainerRun) -> Spec:
        """The process that runs ``run.container`` in the image: the volumes bind-mounted
        (each given to the image's user, as GCS FUSE's uid/gid options show them; a directory
        mounted at its own path, the PostgreSQL socket directory the Cloud SQL layout links
        to, is made when missing and left alone), the env set by the shell that then runs the
        container's argv."""
        image, container = run.image, run.container
        config = image.config()
        name = self._container(image, config)
        user = _user(config)
        volumes: list[str] = []
        for mount_path, where in run.mounts.items():
            if str(where) == mount_path:  # a host directory seen at its own path: a socket's
                where.mkdir(mode=0o755, parents=True, exist_ok=True)
            elif user is not None:
                _give(where, user)
            volumes += ["--volume", f"{where.resolve()}:{mount_path}"]
        workdir = str(container.get("workingDir") or config.workdir)
        script = "".join(
            f"export {k}={shlex.quote(v)}\n" for k, v in {**run.env, **run.platform_env}.items()
        )
        script += 'exec "$@" </dev/null\n'
        argv = [self.binary(), *config.storage, "run", "--isolation", "chroot"]
        argv += ["--network", "host", "--workingdir", workdir, *volumes, name, "--"]
        argv += ["/bin/sh", "-s", "--", *container_argv(config, container)]
        return Spec(argv=argv, env=self.env(), cwd=image.root, what=run.what, stdin=script.encode())


def container_name(root: Path) -> str:
    """The working container of the image directory ``root`` (a state dir's image)."""
    return "djdeploy-" + hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]


def _user(config: ImageConfig) -> tuple[int, int] | None:
    """The image's numeric USER (uid, gid) when this emulator may give files to it (root)."""
    uid, _, gid = config.user.partition(":")
    if os.geteuid() != 0 or not uid.isdigit():
        return None
    return int(uid), int(gid) if gid.isdigit() else int(uid)


def _give(root: Path, user: tuple[int, int]) -> None:
    """``root``'s tree to ``user`` (symlinks themselves, never what they point to)."""
    uid, gid = user
    for here, dirnames, filenames in os.walk(root.resolve()):
        for name in [".", *dirnames, *filenames]:
            with contextlib.suppress(OSError):
                os.chown(os.path.join(here, name), uid, gid, follow_symlinks=False)
