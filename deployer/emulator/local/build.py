"""Cloud Build's local execution (docs/emulator.md, "Local execution", "Builds"): a build of
djdeploy's source archive made without a container engine, following container/Dockerfile's
steps by hand, into an image directory (:mod:`deployer.emulator.local.image`).

The steps, in ``<state>/images/<hex>/`` (``<hex>``: :func:`image_digest`, content-addressed):
the archive unpacked into ``app/``; the virtualenv (``python -m venv``, then
``.djdeploy/install-requirements.sh .djdeploy/requirements.txt`` run from the project root with
the venv first on PATH, then ``import django``), shared by every image whose requirements inputs
are the same: ``<state>/venvs/<hash>``, linked as ``venv``, pip's cache in ``<state>/pip-cache``;
``app/`` byte-compiled; ``.djdeploy/`` moved to ``djdeploy/``; the build-time collectstatic
with the final stage's environment (paths moved into the image directory); ``image.json`` last.

With the buildah engine (:mod:`deployer.emulator.local.buildah`, ``DJDEPLOY_EMULATOR_ENGINE``),
the unpacked archive is built by buildah with its own Dockerfile instead, and the image directory
holds only ``image.json`` naming the image in buildah's storage.

Each build runs in a thread of its own, its processes in their own process group, so a timeout
or a cancel kills them all. The backend (cloudbuild) starts a build, polls it, and turns its
:class:`BuildResult` into the Build resource; nothing here knows the API.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .buildah import Buildah, EngineMissing
from .dockerfile import DockerfileError, final_config
from .image import (
    BUILDAH,
    CONFIG_FILE,
    LOCAL,
    Image,
    ImageConfig,
    find_image,
    finish_image,
    image_root,
)

VENVS = "venvs"
PIP_CACHE = "pip-cache"
#: written in a shared virtualenv once its install succeeded: one without it is never reused
VENV_READY = ".djdeploy-ready"
CONTAINER_DIR = ".djdeploy"
DOCKERFILE = f"{CONTAINER_DIR}/Dockerfile"
INSTALL = f"sh {CONTAINER_DIR}/install-requirements.sh {CONTAINER_DIR}/requirements.txt"
#: files of the archive that decide what the virtualenv holds (besides the project's own)
REQUIREMENTS_INPUTS = (
    f"{CONTAINER_DIR}/install-requirements.sh",
    f"{CONTAINER_DIR}/requirements.txt",
    f"{CONTAINER_DIR}/djdeploy_runtime/pyproject_deps.py",
)
#: the Dockerfile's build-time collectstatic (its last RUN), with /opt/djdeploy moved
COLLECTSTATIC = ["manage", "collectstatic", "--noinput", "--verbosity", "0"]
#: host variables a build step keeps besides the image's (pip also keeps its own PIP_*,
#: proxy and certificate settings: the machine's package index is respected)
HOST_ENV = ("HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "LOGNAME")
TAIL_LINES = 8
#: how long closing waits for a killed build's thread to end
JOIN_SECONDS = 10.0
#: a requirements line naming a file of the project (-r/-c) or a local path (-e ., ./pkg)
_INCLUDE = re.compile(r"^\s*(?:-r|-c|--requirement|--constraint)[\s=]+(\S+)")
_LOCAL = re.compile(r"^\s*(?:-e|--editable|\.|/|file:)|\s@\s*file:")


def image_digest(archive: bytes, build_args: dict[str, str], *, engine: str = LOCAL) -> str:
    """The digest of the image built from ``archive`` (the source tar.gz) with ``build_args``,
    by this Python and ``engine`` (``sha256:<hex>``): the same inputs, the same image."""
    h = hashlib.sha256(b"djdeploy local image 1\n")
    if engine != LOCAL:
        h.update(f"engine {engine}\n".encode())
    h.update(f"python {sys.version_info.major}.{sys.version_info.minor}\n".encode())
    h.update(json.dumps(build_args, sort_keys=True).encode() + b"\n")
    h.update(archive)
    return "sha256:" + h.hexdigest()


@dataclass(frozen=True)
class BuildRequest:
    """What a build builds: the source archive (tar.gz), the Dockerfile's build args, how
    long it may run (wall seconds), and the engine that builds it (LOCAL or BUILDAH)."""

    archive: bytes
    build_args: dict[str, str]
    timeout: float
    engine: str = LOCAL

    @property
    def digest(self) -> str:
        return image_digest(self.archive, self.build_args, engine=self.engine)


@dataclass(frozen=True)
class BuildResult:
    """How a build ended: ``status`` SUCCESS, FAILURE, TIMEOUT or CANCELLED; ``log`` its lines
    (wall time, text); ``failure``: why it failed (the failing step's exit, or the reason
    nothing ran), with ``tail`` the last lines of its output."""

    status: str
    digest: str
    log: list[tuple[float, str]]
    failure: str | None = None
    tail: list[str] = field(default_factory=list)


class _Stopped(Exception):
    """The build was cancelled or ran out of time: its processes are killed."""


class _StepFailed(Exception):
    def __init__(self, message: str, tail: list[str]) -> None:
        super().__init__(message)
        self.tail = tail


class _Job:
    """One build under way: its thread, its current process, its log."""

    def __init__(self, request: BuildRequest) -> None:
        self.request = request
        self.log: list[tuple[float, str]] = []
        self.result: BuildResult | None = None
        self.stopped: str | None = None  # "CANCELLED" / "TIMEOUT"
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.timer: threading.Timer | None = None

    def say(self, text: str) -> None:
        self.log.append((time.time(), text))

    def stop(self, status: str) -> None:
        """End the build: the running step's process group is killed, no further step starts."""
        with self._lock:
            if self.result is not None or self.stopped is not None:
                return
            self.stopped = status
            if self._proc is not None and self._proc.poll() is None:
                _kill_group(self._proc)

    def run(self, argv: list[str], *, cwd: Path, env: dict[str, str], check: bool = True) -> None:
        """Run one step, its output into the log; _StepFailed on a non-zero exit (``check``)."""
        with self._lock:
            if self.stopped is not None:
                raise _Stopped()
            self._proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                start_new_session=True,  # its own process group: killed whole
            )
        proc = self._proc
        first = len(self.log)
        assert proc.stdout is not None
        for line in proc.stdout:
            self.say(line.rstrip("\n"))
        code = proc.wait()
        with self._lock:
            self._proc = None
            if self.stopped is not None:
                raise _Stopped()
        if code != 0 and check:
            tail = [text for _, text in self.log[first:] if text.strip()][-TAIL_LINES:]
            raise _StepFailed(f"step exited with non-zero status: {code}", tail)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


class LocalBuilds:
    """The builds of one state dir: images in ``<state>/images``, shared virtualenvs in
    ``<state>/venvs``, pip's cache in ``<state>/pip-cache``; ``buildah``: the engine that builds
    instead (None: no engine)."""

    def __init__(self, state_dir: Path, *, buildah: Buildah | None = None) -> None:
        self.dir = state_dir
        self.buildah = buildah
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._keyed: dict[str, threading.Lock] = {}  # one build at a time per image / venv
        self.pip_runs = 0  # virtualenvs installed (not reused) by this emulator

    def start(self, build_id: str, request: BuildRequest) -> None:
        """Start building, unless this build is known already (started, or done)."""
        with self._lock:
            if build_id in self._jobs:
                return
            job = self._jobs[build_id] = _Job(request)
        found = self._found(request.digest)
        if found is not None:
            job.say(f"image {found.digest} is already built here: nothing to do")
            job.result = BuildResult("SUCCESS", found.digest, job.log)
            return
        job.timer = threading.Timer(request.timeout, job.stop, args=("TIMEOUT",))
        job.timer.daemon = True
        job.thread = threading.Thread(target=self._work, args=(job,), name=f"build-{build_id}")
        job.thread.start()
        job.timer.start()

    @property
    def engine(self) -> str:
        """What builds here: LOCAL or BUILDAH."""
        return LOCAL if self.buildah is None else BUILDAH

    def _found(self, digest: str) -> Image | None:
        """The finished image with this digest, when it can run: a buildah image still in
        its storage (else its record is dropped, to be built again)."""
        found = find_image(self.dir, digest)
        if found is None or found.config().engine != BUILDAH:
            return found
        config = found.config()
        with contextlib.suppress(EngineMissing):  # no buildah (any more): build again
            if self.buildah is not None and self.buildah.has_image(
                config.ref, storage=config.storage
            ):
                return found
        shutil.rmtree(found.root, ignore_errors=True)
        return None

    def result(self, build_id: str) -> BuildResult | None:
        """How the build ended; None while it runs or when it was never started here (an
        emulator restarted mid-build: start it again)."""
        job = self._jobs.get(build_id)
        return None if job is None else job.result

    def started(self, build_id: str) -> bool:
        return build_id in self._jobs

    def cancel(self, build_id: str) -> None:
        """Kill the build's processes; it ends CANCELLED."""
        job = self._jobs.get(build_id)
        if job is not None:
            job.stop("CANCELLED")

    def stop_all(self) -> None:
        """Kill every running build and wait for its thread to see it (an emulator closing)."""
        jobs = list(self._jobs.values())
        for job in jobs:
            job.stop("CANCELLED")
        for job in jobs:
            if job.thread is not None:
                job.thread.join(JOIN_SECONDS)

    def remove_all(self) -> None:
        """Forget every build: stopped, images and virtualenvs deleted (pip's cache is kept;
        an image buildah built: removed from its storage, with its working container)."""
        self.stop_all()
        with self._lock:
            self._jobs.clear()
        buildah = self.buildah or Buildah(root=None)  # each record names its own storage
        for record in (self.dir / "images").glob(f"*/{CONFIG_FILE}"):
            image = Image(record.parent)
            if image.config().engine == BUILDAH:
                buildah.remove_image(image.config(), root=image.root)
        for name in ("images", VENVS):
            shutil.rmtree(self.dir / name, ignore_errors=True)

    # -- the build ----------------------------------------------------------------------------

    def _key_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._keyed.setdefault(key, threading.Lock())

    def _work(self, job: _Job) -> None:
        """The build's thread: build, then say how it ended (always: the operation waits)."""
        digest = job.request.digest
        root = image_root(self.dir, digest)
        status, failure, tail = "SUCCESS", None, []
        with self._key_lock(digest):
            try:
                if self._found(digest) is None:  # else built meanwhile, same inputs
                    self._build(job, root)
            except _Stopped:
                status = "CANCELLED"
            except _StepFailed as exc:
                status, failure, tail = "FAILURE", str(exc), exc.tail
            except (OSError, tarfile.TarError, DockerfileError, EngineMissing) as exc:
                status, failure = "FAILURE", str(exc)
                job.say(f"ERROR: {exc}")
            except Exception as exc:  # a bug here: the build ends, the emulator goes on
                status, failure = "INTERNAL_ERROR", f"{type(exc).__name__}: {exc}"
                job.say(f"ERROR: {failure}")
            if status != "SUCCESS":  # an unfinished image directory is never kept
                shutil.rmtree(root, ignore_errors=True)
        if job.timer is not None:
            job.timer.cancel()
        with job._lock:
            if job.stopped is not None and status != "SUCCESS":  # killed: how it was stopped
                status = job.stopped
            job.result = BuildResult(status, digest, job.log, failure=failure, tail=tail)

    def _build(self, job: _Job, root: Path) -> None:
        if root.exists():  # an unfinished build (an emulator stopped mid-build)
            shutil.rmtree(root)
        app = root / "app"
        app.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(job.request.archive), mode="r:gz") as tar:
            tar.extractall(app, filter="data")
        dockerfile = app / DOCKERFILE
        if not dockerfile.is_file():
            raise _StepFailed(
                "step exited with non-zero status: 1",
                [
                    "unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                    f"lstat /workspace/{DOCKERFILE}: no such file or directory"
                ],
            )
        if self.buildah is not None:
            self._build_with_buildah(job, root, self.buildah)
            return
        config = final_config(dockerfile.read_text(), job.request.build_args)
        steps = 5
        job.say(
            f"Step 1/{steps} : RUN python -m venv /venv && {INSTALL} && python -c 'import django'"
        )
        venv = self._venv(job, app)
        (root / "venv").symlink_to(venv, target_is_directory=True)
        job.say(f"Step 2/{steps} : RUN python -m compileall -q /app || true")
        # a file that does not parse must not fail the build (the Dockerfile's `|| true`)
        job.run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "compileall",
                "-q",
                "--invalidation-mode",
                "unchecked-hash",
                str(app),
            ],
            cwd=app,
            env=_host_env(),
            check=False,
        )
        job.say(f"Step 3/{steps} : RUN mv /app/.djdeploy /opt/djdeploy")
        (app / CONTAINER_DIR).rename(root / "djdeploy")
        (root / "djdeploy" / "entrypoint.sh").chmod(0o755)
        (app / "media").mkdir(exist_ok=True)
        (root / "static").mkdir()
        job.say(f"Step 4/{steps} : RUN /opt/djdeploy/entrypoint.sh {' '.join(COLLECTSTATIC)}")
        image = Image(root)
        env = _host_env()
        env.update(_image_env(image, config))
        job.run(
            [str(root / "djdeploy" / "entrypoint.sh"), *COLLECTSTATIC],
            cwd=Path(image.local_path(config.workdir)),
            env=env,
        )
        job.say(
            f"Step 5/{steps} : ENTRYPOINT {json.dumps(config.entrypoint)} "
            f"CMD {json.dumps(config.cmd)}"
        )
        finish_image(root, config)
        job.say(f"Successfully built {image.digest}")

    def _build_with_buildah(self, job: _Job, root: Path, buildah: Buildah) -> None:
        """The archive unpacked in ``root/app`` built by buildah; the record written, the
        unpacked source removed (the image holds it)."""
        app = root / "app"
        env = buildah.env()
        config = buildah.build(
            context=app,
            dockerfile=DOCKERFILE,
            build_args=job.request.build_args,
            digest=job.request.digest,
            run=lambda argv: job.run(argv, cwd=app, env=env),
        )
        shutil.rmtree(app)
        finish_image(root, config)
        job.say(f"Successfully built {job.request.digest} as {config.ref}")

    def _venv(self, job: _Job, app: Path) -> Path:
        """The virtualenv of the project's requirements: the shared one with the same inputs
        when it was installed whole, else made here (pip's output in the log)."""
        key = requirements_key(app, job.request.digest)
        venv = self.dir / VENVS / key
        with self._key_lock(f"venv:{key}"):
            if (venv / VENV_READY).is_file():
                job.say(
                    f" ---> Using cache: virtualenv {VENVS}/{key} (same requirements: no pip run)"
                )
                return venv
            if venv.exists():
                shutil.rmtree(venv)  # an install that failed or was stopped
            venv.parent.mkdir(parents=True, exist_ok=True)
            env = os.environ.copy()
            env.pop("PYTHONPATH", None)
            env["PIP_CACHE_DIR"] = str(self.dir / PIP_CACHE)
            env["VIRTUAL_ENV"] = str(venv)
            env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
            if _outer_pip_can_target():
                # a venv without its own pip, and a `pip` that is ours aimed at it: ensurepip
                # copying pip into every venv took most of a fresh build's virtualenv time
                bare = [sys.executable, "-m", "venv", "--without-pip", str(venv)]
                job.run(bare, cwd=app, env=env)
                _pip_shim(venv)
            else:
                job.run([sys.executable, "-m", "venv", str(venv)], cwd=app, env=env)
            self.pip_runs += 1
            job.run(["sh", *INSTALL.split()[1:]], cwd=app, env=env)
            job.run([str(venv / "bin" / "python"), "-c", "import django"], cwd=app, env=env)
            (venv / VENV_READY).write_text(key + "\n")
        return venv


def _outer_pip_can_target() -> bool:
    """Whether the emulator's own pip can install into another environment (``--python``,
    pip 22.3 and newer)."""
    try:
        from importlib.metadata import version

        major, minor = (int(x) for x in version("pip").split(".")[:2])
    except (ImportError, ValueError):
        return False
    return (major, minor) >= (22, 3)


def _pip_shim(venv: Path) -> None:
    """``venv/bin/pip``: the emulator's pip installing into ``venv``, for the install script,
    which runs the ``pip`` on PATH as the image build does."""
    shim = venv / "bin" / "pip"
    shim.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -m pip --python "{venv / "bin" / "python"}" "$@"\n'
    )
    shim.chmod(0o755)


def requirements_key(app: Path, digest: str) -> str:
    """The hash of what decides the virtualenv: this Python, the runtime's requirements and
    install script, the project's requirements.txt (with the files its -r/-c lines name) or
    pyproject.toml. A requirement on a path of the project (``-e .``, ``./pkg``) makes the
    whole source an input (``digest``): that venv is the image's alone."""
    h = hashlib.sha256(f"{sys.version_info.major}.{sys.version_info.minor}\n".encode())
    for rel in REQUIREMENTS_INPUTS:
        path = app / rel
        h.update(rel.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"") + b"\0")
    pending = ["requirements.txt"] if (app / "requirements.txt").is_file() else []
    if not pending and (app / "pyproject.toml").is_file():
        h.update(b"pyproject.toml\0" + (app / "pyproject.toml").read_bytes())
    seen: set[str] = set()
    while pending:
        rel = pending.pop()
        path = (app / rel).resolve()
        if rel in seen or not path.is_file() or not path.is_relative_to(app.resolve()):
            continue
        seen.add(rel)
        text = path.read_text(errors="replace")
        h.update(rel.encode() + b"\0" + text.encode() + b"\0")
        for line in text.splitlines():
            if _LOCAL.search(line):
                h.update(digest.encode())
            m = _INCLUDE.match(line)
            if m:
                pending.append(os.path.normpath(os.path.join(os.path.dirname(rel), m.group(1))))
    return h.hexdigest()[:32]


def _host_env() -> dict[str, str]:
    return {k: os.environ[k] for k in HOST_ENV if k in os.environ}


def _image_env(image: Image, config: ImageConfig) -> dict[str, str]:
    """The image's environment with its paths moved into the image directory (PATH item by
    item; APP_HOME, STATIC_ROOT, MEDIA_ROOT...)."""
    out = {}
    for key, value in config.env.items():
        if key == "PATH":
            out[key] = os.pathsep.join(image.local_path(p) for p in value.split(os.pathsep))
        else:
            out[key] = image.local_path(value) if value.startswith("/") else value
    return out
