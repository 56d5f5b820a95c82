"""The buildah engine end to end (docs/emulator.md, "The buildah engine"): with
DJDEPLOY_EMULATOR_ENGINE=buildah, `up` on the built-in emulator builds container/Dockerfile for
real with buildah, runs db-init and migrate in that image and serves the revision from it; the
restarted emulator serves it again at the local URL, and stops every process it started.

Needs root, buildah and the stand-in base that tests/container/real_image.sh makes (CI runs it
before pytest): skipped otherwise. Its storage is the one the script keeps, so the build's
layers are mostly cached (the script built the same sample project).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from google.cloud import secretmanager

from deployer.api import Target, up
from deployer.archive import build_archive, container_dir, default_source
from deployer.config import Config
from deployer.emulator import Emulator, serve
from deployer.emulator.local.build import BuildRequest, LocalBuilds
from deployer.emulator.local.buildah import ENGINE_VAR, ROOT_VAR, Buildah, engine_from
from deployer.emulator.local.postgres import find_binaries
from deployer.emulator.testing import gapic_options

CACHE = Path(os.environ.get("REAL_IMAGE_CACHE", "/var/cache/djdeploy-real-image"))
BASE = "localhost/python:3.11-slim-bookworm"
TIMEOUT = 600.0  # a restart's instance answering, on a loaded machine; never reached when fine


def _ready() -> str | None:
    """Why this machine cannot run the test, or None."""
    if os.geteuid() != 0:
        return "needs root (buildah --isolation chroot)"
    if shutil.which("buildah") is None:
        return "needs buildah (tests/container/real_image.sh installs it)"
    if find_binaries() is None:
        return "needs PostgreSQL"
    if not Buildah(root=CACHE).has_image(BASE):
        return f"needs the base {BASE} in {CACHE} (run tests/container/real_image.sh)"
    return None


needs_base = pytest.mark.skipif(_ready() is not None, reason=str(_ready()))
needs_buildah = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("buildah") is None, reason="needs root and buildah"
)


@pytest.fixture
def state_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv(ENGINE_VAR, "buildah")
    monkeypatch.setenv(ROOT_VAR, str(CACHE))
    path = Path(tempfile.mkdtemp(prefix="lbh-", dir="/tmp"))  # short: the layout socket fits
    yield path
    LocalBuilds(path, buildah=Buildah(root=CACHE)).remove_all()  # the image, its container
    shutil.rmtree(path, ignore_errors=True)


def _get(port: int, host: str, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Host": host})
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


@pytest.mark.slow
@needs_base
def test_up_builds_runs_and_serves_the_real_image(state_dir: Path) -> None:
    result = up(
        Config(tenant="demo", project="acme-prod"),
        target=Target(emulator=True, state_dir=state_dir, time_scale=0.01),
    )
    assert result.ok, [r.error for r in result.results if r.error]
    [record] = state_dir.glob("images/*/image.json")
    image = json.loads(record.read_text())
    assert image["engine"] == "buildah" and image["user"] == "2000:2000"
    assert image["ref"] == f"localhost/djdeploy-emulator:{record.parent.name}"
    assert not (record.parent / "app").exists()  # the files are in buildah's storage

    running = serve(Emulator(state_dir=state_dir, execute=True))
    pids: list[int] = []
    try:
        # migrate ran in the image, against the instance's socket under /cloudsql
        secrets = secretmanager.SecretManagerServiceClient(**gapic_options(running.url))
        name = "projects/acme-prod/secrets/demo-django-db-password/versions/latest"
        password = secrets.access_secret_version(name=name).payload.data.decode()
        [server] = running.control.local()["sql"]
        with psycopg.connect(
            host=str(Path(server["layoutSocket"]).parent),
            user="demo_django",
            password=password,
            dbname="demo_django",
        ) as conn:
            row = conn.execute("SELECT count(*) FROM django_migrations").fetchone()
            assert row is not None and row[0] > 0

        # the restarted emulator serves the revision from the image again
        deadline = time.monotonic() + TIMEOUT
        while not (local := running.control.local())["revisions"]:
            assert time.monotonic() < deadline, local
            time.sleep(0.5)
        port = local["frontdoor"]["port"]
        host = f"demo-django.localhost:{port}"  # the service id form (docs/emulator.md)
        assert _get(port, host, "/health/") == 200
        assert _get(port, host, "/admin/login/") == 200
        pids = [p["pid"] for p in local["processes"]]
        argv = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in pids]
        assert any(b"buildah" in a[0] and b"run" in a for a in argv), argv
    finally:
        running.stop()
    # every process of those groups ended (a zombie is over, waiting for init to reap it)
    table = subprocess.run(["ps", "-eo", "pgid=,stat=,args="], capture_output=True, text=True)
    rows = [row.split(None, 2) for row in table.stdout.splitlines()]
    assert not [r for r in rows if int(r[0]) in pids and not r[1].startswith("Z")], rows


def test_the_engine_setting_is_local_buildah_or_said_wrong() -> None:
    assert engine_from({}) == ("local", None)
    assert engine_from({ENGINE_VAR: "Buildah "}) == ("buildah", None)
    engine, problem = engine_from({ENGINE_VAR: "docker"})
    assert engine == "local"
    assert problem is not None and "local (the default) or buildah" in problem


@pytest.mark.slow
@needs_buildah
def test_a_missing_base_fails_the_build_saying_how_to_get_it(tmp_path: Path) -> None:
    builds = LocalBuilds(tmp_path / "state", buildah=Buildah(root=tmp_path / "empty"))
    archive = build_archive(default_source(), container_dir()).data
    builds.start("b1", BuildRequest(archive, {}, 600.0, engine="buildah"))
    deadline = time.monotonic() + 120
    while (result := builds.result("b1")) is None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert result.status == "FAILURE"
    assert result.failure is not None
    assert "the base image python:3.11-slim-bookworm is not in buildah's storage" in result.failure
    assert "tests/container/real_image.sh" in result.failure
    assert not list((tmp_path / "state").glob("images/*/image.json"))
