"""Cloud Build's local execution (docs/emulator.md, "Builds"): an executing emulator builds
djdeploy's source archive for real, through the real google-cloud-build client, into an image
directory that Artifact Registry's digest names.

The tests share one executing emulator (and so its virtualenvs): the first build installs the
sample's requirements from the package index, the others reuse them. Each test works in a
project of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.api_core.future.polling import DEFAULT_POLLING
from google.cloud.devtools import cloudbuild_v1 as cb

from deployer.archive import Archive, build_archive, container_dir, default_source
from deployer.emulator import Emulator, RunningEmulator, serve, serviceusage
from deployer.emulator.local.build import image_digest, requirements_key
from deployer.emulator.local.dockerfile import final_config
from deployer.emulator.local.image import find_image
from deployer.emulator.testing import discovery_client, gapic_options, storage_client

REGION = "europe-west1"
BUILDER = "gcr.io/cloud-builders/docker"
#: real builds: pip from the package index, Django's collectstatic (generous, never a window)
POLL = DEFAULT_POLLING.with_delay(initial=0.1, maximum=0.5, multiplier=1.5).with_timeout(900)
DEADLINE = 120.0


@pytest.fixture(scope="module")
def running() -> Iterator[RunningEmulator]:
    handle = serve(Emulator(time_scale=0.001, execute=True))
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def client(running: RunningEmulator) -> cb.CloudBuildClient:
    return cb.CloudBuildClient(**gapic_options(running.url))


class Project:
    """A project with Cloud Build, a staging bucket and a Docker repository."""

    def __init__(self, running: RunningEmulator, project: str) -> None:
        self.running = running
        self.id = project
        for service in ("cloudbuild.googleapis.com", "artifactregistry.googleapis.com"):
            serviceusage.set_enabled(running.emu, project, service)
        self.bucket = storage_client(running.url, project).create_bucket(
            f"{project}-sources", location=REGION
        )
        parent = f"projects/{project}/locations/{REGION}"
        ar = discovery_client(running.url, "artifactregistry", "v1")
        repos = ar.projects().locations().repositories()
        repos.create(parent=parent, repositoryId="repo", body={"format": "DOCKER"}).execute()
        self.parent = parent

    def start(self, client: cb.CloudBuildClient, archive: Archive, **extra: Any) -> tuple[Any, str]:
        """Upload the archive and start its build; (the operation, the image reference)."""
        self.bucket.blob(archive.object_name).upload_from_string(archive.data)
        image = f"{REGION}-docker.pkg.dev/{self.id}/repo/app:{archive.tag}"
        body = {
            "steps": [
                {"name": BUILDER, "args": ["build", "-f", ".djdeploy/Dockerfile", "-t", image, "."]}
            ],
            "images": [image],
            "tags": [archive.tag, "djdeploy"],
            "source": {
                "storageSource": {"bucket": self.bucket.name, "object": archive.object_name}
            },
            "options": {"logging": "CLOUD_LOGGING_ONLY"},
            "timeout": "1800s",
            **extra,
        }
        op = client.create_build(
            project_id=self.id, build=cb.Build.from_json(json.dumps(body)), parent=self.parent
        )
        return op, image

    def build(self, client: cb.CloudBuildClient, archive: Archive, **extra: Any) -> cb.Build:
        """Build and wait; the build as it ended (a failed one fails its operation)."""
        op, _ = self.start(client, archive, **extra)
        with contextlib.suppress(gexc.GoogleAPICallError):
            op.result(polling=POLL)
        return client.get_build(name=f"{self.parent}/builds/{op.metadata.build.id}")

    def log(self, build_id: str) -> list[str]:
        """The build's lines, through Cloud Logging's entries.list."""
        entries = discovery_client(self.running.url, "logging", "v2").entries()
        body: dict[str, Any] = {
            "resourceNames": [f"projects/{self.id}"],
            "filter": f'resource.type="build" AND resource.labels.build_id="{build_id}"',
            "pageSize": 1000,
        }
        lines: list[str] = []
        while True:
            page = entries.list(body=body).execute()
            lines += [e["textPayload"] for e in page.get("entries", [])]
            if not page.get("nextPageToken"):
                return lines
            body["pageToken"] = page["nextPageToken"]


def _sample(tmp_path: Path) -> Path:
    """A copy of the sample project to change."""
    project = tmp_path / "project"
    shutil.copytree(default_source(), project)
    return project


def _failed(build: cb.Build) -> str:
    assert build.status == cb.Build.Status.FAILURE, build.status
    assert build.status_detail.startswith(f'Build step failure: build step 0 "{BUILDER}" failed: ')
    return build.status_detail


@pytest.mark.slow
def test_the_sample_builds_into_the_image_its_digest_names(
    running: RunningEmulator, client: cb.CloudBuildClient, tmp_path: Path
) -> None:
    project = Project(running, "build-sample")
    builds = running.emu.local.builds
    assert builds is not None
    archive = build_archive(default_source(), container_dir())

    started = time.monotonic()
    built = project.build(client, archive)
    first = time.monotonic() - started
    assert built.status == cb.Build.Status.SUCCESS, built.status_detail
    [pushed] = built.results.images
    state = running.emu.local.dir
    assert state is not None
    image = find_image(state, pushed.digest)
    assert image is not None and image.root.name == pushed.digest.removeprefix("sha256:")
    tag = running.emu.store.get("artifactregistry.tag", pushed.name)
    assert tag["digest"] == pushed.digest  # what Cloud Run resolves the image reference to
    assert (image.app / "manage.py").is_file() and not (image.app / ".djdeploy").exists()
    assert (image.runtime / "entrypoint.sh").stat().st_mode & 0o111
    assert (image.venv / ".djdeploy-ready").is_file()  # the shared virtualenv, installed whole
    assert list((image.venv / "lib").glob("python3.*/site-packages/django/__init__.py"))
    assert list((image.static / "admin" / "css").glob("base*.css"))
    config = image.config()
    assert config.entrypoint == ["/opt/djdeploy/entrypoint.sh"] and config.cmd == ["serve"]
    assert config.env["STATIC_ROOT"] == "/srv/static" and config.workdir == "/app"
    log = project.log(built.id)
    assert log[0] == f'starting build "{built.id}"' and log[-1] == "DONE"
    assert any(line.startswith("Successfully installed") for line in log)
    assert f"{pushed.name}: digest: {pushed.digest}" in log

    # the same source again: the image is there, nothing runs
    pip_runs = builds.pip_runs
    started = time.monotonic()
    again = project.build(client, archive)
    second = time.monotonic() - started
    assert again.status == cb.Build.Status.SUCCESS
    assert again.results.images[0].digest == pushed.digest
    assert any("already built here" in line for line in project.log(again.id))

    # changed code, the same requirements: a new image on the same virtualenv, no pip run
    changed = _sample(tmp_path)
    (changed / "djsample" / "extra.py").write_text("ANSWER = 42\n")
    started = time.monotonic()
    rebuilt = project.build(client, build_archive(changed, container_dir()))
    third = time.monotonic() - started
    assert rebuilt.status == cb.Build.Status.SUCCESS, rebuilt.status_detail
    other = find_image(state, rebuilt.results.images[0].digest)
    assert other is not None and other.root != image.root
    assert (other.app / "djsample" / "extra.py").is_file()
    assert other.venv.resolve() == image.venv.resolve()
    assert builds.pip_runs == pip_runs
    assert any("no pip run" in line for line in project.log(rebuilt.id))
    print(f"\nfirst build {first:.1f}s, identical {second:.1f}s, same requirements {third:.1f}s")


@pytest.mark.slow
def test_a_project_without_requirements_fails_with_the_reason(
    running: RunningEmulator, client: cb.CloudBuildClient, tmp_path: Path
) -> None:
    project = Project(running, "build-noreq")
    source = _sample(tmp_path)
    (source / "requirements.txt").unlink()
    built = project.build(client, build_archive(source, container_dir()))
    detail = _failed(built)
    reason = "djdeploy: the project has neither requirements.txt nor pyproject.toml"
    assert detail.endswith(reason)
    assert built.failure_info.type_ == cb.Build.FailureInfo.FailureType.USER_BUILD_STEP
    log = project.log(built.id)
    assert reason in log and log[-2] == "ERROR" and log[-1].startswith("ERROR: Build step failure")
    assert not built.results.images
    assert running.emu.store.get("artifactregistry.tag", built.images[0]) is None


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # pip's words for it differ by version (the emulator's own pip installs)
        ("requirements", "ResolutionImpossible|No matching distribution found for psycopg<3"),
        ("syntax", "SyntaxError"),
        ("static", "could not be found"),
    ],
)
def test_a_build_the_real_one_fails_fails(
    running: RunningEmulator,
    client: cb.CloudBuildClient,
    tmp_path: Path,
    change: str,
    expected: str,
) -> None:
    project = Project(running, f"build-{change}")
    source = _sample(tmp_path)
    if change == "requirements":  # the runtime needs psycopg 3: pip's resolver gives up
        (source / "requirements.txt").write_text("Django>=4.2,<6\npsycopg<3\n")
    elif change == "syntax":
        settings = source / "djsample" / "settings.py"
        settings.write_text(settings.read_text() + "\ndef broken(:\n")
    else:  # a stylesheet naming a file that is not there: the manifest storage refuses it
        css = source / "uploads" / "static" / "uploads" / "site.css"
        css.parent.mkdir(parents=True)
        css.write_text('body { background: url("missing.png"); }\n')
    built = project.build(client, build_archive(source, container_dir()))
    detail = _failed(built)
    words = expected.split("|")
    assert any(w in detail for w in words), detail
    assert any(w in line for line in project.log(built.id) for w in words)


def _hanging_container(tmp_path: Path) -> Path:
    """djdeploy's container files with an install step that hangs, leaving a file named by its
    pid in tmp_path/pids (each time it runs)."""
    container = tmp_path / "container"
    shutil.copytree(container_dir(), container, ignore=shutil.ignore_patterns("sample"))
    (tmp_path / "pids").mkdir()
    (container / "install-requirements.sh").write_text(
        f"#!/bin/sh\ntouch {tmp_path / 'pids'}/$$\nexec sleep 600\n"
    )
    return container


def _pids(tmp_path: Path) -> list[int]:
    return sorted(int(p.name) for p in (tmp_path / "pids").iterdir())


def _running(client: cb.CloudBuildClient, name: str, tmp_path: Path, *, times: int = 1) -> bool:
    """Whether the hanging install step has started ``times`` times. Reads the build first: a
    request, on which the emulator runs the due operation (which starts the build)."""
    client.get_build(name=name)
    return len(_pids(tmp_path)) >= times


def _wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {DEADLINE}s"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_cancel_kills_the_build(
    running: RunningEmulator, client: cb.CloudBuildClient, tmp_path: Path
) -> None:
    project = Project(running, "build-cancel")
    archive = build_archive(default_source(), _hanging_container(tmp_path))
    op, _ = project.start(client, archive)
    name = f"{project.parent}/builds/{op.metadata.build.id}"
    _wait_for(lambda: _running(client, name, tmp_path), "the install step starts")
    [pid] = _pids(tmp_path)
    request = {"project_id": project.id, "id": op.metadata.build.id, "name": name}
    assert client.cancel_build(request=request).status == cb.Build.Status.CANCELLED
    _wait_for(lambda: not _alive(pid), "the install step is killed")
    assert client.get_build(name=name).status == cb.Build.Status.CANCELLED


@pytest.mark.slow
def test_a_build_past_its_timeout_is_killed(
    running: RunningEmulator, client: cb.CloudBuildClient, tmp_path: Path
) -> None:
    project = Project(running, "build-timeout")
    archive = build_archive(default_source(), _hanging_container(tmp_path))
    built = project.build(client, archive, timeout="10s")
    assert built.status == cb.Build.Status.TIMEOUT
    for pid in _pids(tmp_path):  # none if the virtualenv step was the one killed
        _wait_for(lambda pid=pid: not _alive(pid), "the install step is killed")
    assert project.log(built.id)[-1] == "ERROR: context deadline exceeded"


@pytest.mark.slow
def test_an_emulator_restarted_mid_build_runs_it_again(tmp_path: Path) -> None:
    """The emulator that stops kills its build; the next one on the state dir starts it again."""
    state = tmp_path / "state"
    state.mkdir()
    archive = build_archive(default_source(), _hanging_container(tmp_path))
    first = serve(Emulator(state_dir=state, time_scale=0.001, execute=True))
    try:
        client = cb.CloudBuildClient(**gapic_options(first.url))
        project = Project(first, "build-restart")
        op, _ = project.start(client, archive)
        name = f"{project.parent}/builds/{op.metadata.build.id}"
        _wait_for(lambda: _running(client, name, tmp_path), "the build starts")
    finally:
        first.stop()
    [killed] = _pids(tmp_path)
    assert not _alive(killed)
    second = serve(Emulator(state_dir=state, time_scale=0.001, execute=True))
    try:
        client = cb.CloudBuildClient(**gapic_options(second.url))
        assert client.get_build(name=name).status == cb.Build.Status.WORKING
        _wait_for(lambda: _running(client, name, tmp_path, times=2), "the build starts again")
        request = {"project_id": project.id, "id": op.metadata.build.id, "name": name}
        client.cancel_build(request=request)
    finally:
        second.stop()


# -- what decides an image and a shared virtualenv (no build) -----------------------------------


def test_the_image_config_is_the_dockerfiles_final_stage() -> None:
    dockerfile = (container_dir() / "Dockerfile").read_text()
    config = final_config(dockerfile, {})
    assert config.entrypoint == ["/opt/djdeploy/entrypoint.sh"] and config.cmd == ["serve"]
    assert config.workdir == "/app"
    assert config.env["PATH"].startswith("/venv/bin:")
    assert config.env["APP_HOME"] == "/app" and config.env["MEDIA_ROOT"] == "/app/media"
    assert config.env["DJANGO_PROJECT_SETTINGS"] == ""
    assert "PIP_NO_CACHE_DIR" not in config.env  # the builder stage's, not the image's
    given = final_config(dockerfile, {"DJANGO_PROJECT_SETTINGS": "mysite.settings.prod"})
    assert given.env["DJANGO_PROJECT_SETTINGS"] == "mysite.settings.prod"


def _tree(root: Path, files: dict[str, str]) -> Path:
    shutil.copytree(container_dir(), root / ".djdeploy", ignore=shutil.ignore_patterns("sample"))
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_the_virtualenv_is_shared_by_identical_requirements_inputs(tmp_path: Path) -> None:
    base = {"requirements.txt": "-r requirements/base.txt\n", "requirements/base.txt": "django\n"}
    one = requirements_key(_tree(tmp_path / "one", {**base, "app.py": "1"}), "sha256:1")
    two = requirements_key(_tree(tmp_path / "two", {**base, "app.py": "2"}), "sha256:2")
    assert one == two  # other code, the same requirements
    nested = {**base, "requirements/base.txt": "django<6\n"}
    assert requirements_key(_tree(tmp_path / "nested", nested), "sha256:1") != one
    local = {"requirements.txt": "-e .\n"}
    assert requirements_key(_tree(tmp_path / "a", local), "sha256:1") != requirements_key(
        _tree(tmp_path / "b", local), "sha256:2"
    )  # a requirement on the project itself: the venv is the image's own
    pyproject = {"pyproject.toml": '[project]\nname = "x"\ndependencies = ["django"]\n'}
    assert requirements_key(_tree(tmp_path / "p", pyproject), "sha256:1") != one


def test_the_digest_is_the_content() -> None:
    archive = build_archive(default_source(), container_dir())
    again = build_archive(default_source(), container_dir())
    assert image_digest(archive.data, {}) == image_digest(again.data, {})
    assert image_digest(archive.data, {}) != image_digest(archive.data, {"A": "1"})
    assert image_digest(archive.data, {}).startswith("sha256:")
