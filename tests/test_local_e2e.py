"""The whole local experience, as a user has it (issue: local execution): `djdeploy up
--emulator` on the sample project builds it for real, runs db-init and migrate as processes,
serves it behind the front door, runs its [worker] as a process, and the local URL keeps
answering after the command returned.

One scenario, in order, on one background emulator (a tmp state dir): each stage builds on the
previous one, as a user's day does. Everything goes through the CLI in subprocesses and through
HTTP to the local URL; the Google clients only read what the app wrote (the bucket) and the
generated admin password (Secret Manager), as a user would with gcloud.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deployer.emulator.testing import gapic_options

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "container" / "sample"
DJDEPLOY = [sys.executable, "-m", "deployer"]
PROJECT = "djdeploy-demo"  # the project an emulator target gets when none is given
TIMEOUT = 900  # a whole up with a cold build on a loaded 2-core machine; never reached when fine
#: the [worker]: leaves a marker named after its revision in the media bucket, then waits for work
WORKER = (
    "import os, pathlib, time\n"
    "revision = os.environ['CLOUD_RUN_REVISION']\n"
    "pathlib.Path(os.environ['MEDIA_ROOT'], 'worker-' + revision).write_text('ran')\n"
    "time.sleep(3600)\n"
)

pytestmark = pytest.mark.slow


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: str

    def cookie(self, name: str) -> str:
        for header in self.headers.get_all("Set-Cookie") or []:
            key, _, rest = header.partition("=")
            if key.strip() == name:
                return rest.split(";", 1)[0]
        return ""


@dataclass
class Site:
    """The local URL, reached as a browser would (any *.localhost name is this machine)."""

    url: str

    @property
    def _parts(self) -> urllib.parse.SplitResult:
        return urllib.parse.urlsplit(self.url)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        parts = self._parts
        conn = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers={"Host": parts.netloc, **(headers or {})})
            resp = conn.getresponse()
            return Answer(resp.status, resp.headers, resp.read().decode("utf-8", "replace"))
        finally:
            conn.close()

    def get(self, path: str, *, cookies: str = "") -> Answer:
        return self.request("GET", path, headers={"Cookie": cookies} if cookies else None)

    def post_form(self, path: str, *, fields: dict[str, str], csrf: str, files=None) -> Answer:
        """A form POST with the CSRF cookie and token, from the site's own origin."""
        boundary = uuid.uuid4().hex
        chunks = []
        for name, value in fields.items():
            chunks.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            )
        body = "".join(chunks).encode()
        for name, (filename, data) in (files or {}).items():
            body += (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                    f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                ).encode()
                + data
                + b"\r\n"
            )
        body += f"--{boundary}--\r\n".encode()
        origin = f"{self._parts.scheme}://{self._parts.netloc}"
        return self.request(
            "POST",
            path,
            body=body,
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Cookie": f"csrftoken={csrf}",
                "X-CSRFToken": csrf,
                "Origin": origin,
                "Referer": origin + path,
            },
        )


class Djdeploy:
    """The CLI on one state dir, as a user runs it."""

    def __init__(self, state: Path, source: Path) -> None:
        self.state = state
        self.source = source

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DJDEPLOY_")}
        done = subprocess.run(
            [*DJDEPLOY, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.source,
            timeout=TIMEOUT,
        )
        if check:
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done

    def up(self, *, check: bool = True) -> tuple[dict, subprocess.CompletedProcess[str]]:
        done = self(*self._target("up"), "--source", str(self.source), "--json", check=check)
        return json.loads(done.stdout), done

    def _target(self, verb: str) -> list[str]:
        return [verb, "--tenant", "demo", "--emulator", "--state-dir", str(self.state)]

    def endpoint(self) -> str:
        return json.loads((self.state / "daemon.json").read_text())["url"]

    def local(self) -> dict:
        with urllib_open(self.endpoint() + "/_emulator/local") as resp:
            return json.load(resp)


def urllib_open(url: str):
    import urllib.request

    return urllib.request.urlopen(url, timeout=60)


def revisions(cli: Djdeploy) -> set[str]:
    return set(cli.local()["revisions"])


def pids(cli: Djdeploy) -> set[int]:
    return {p["pid"] for p in cli.local()["processes"]}


def eventually(condition, *, within: float = 120.0) -> bool:
    """Whether ``condition()`` holds, asked again every half second for up to ``within`` s (a
    bound, not a timing: it returns as soon as the condition holds)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def processes_under(state: Path) -> list[str]:
    """Every process whose command line or working directory is in the state dir."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if str(state) in cmdline or cwd.startswith(str(state)):
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


@contextlib.contextmanager
def sample_with_worker(tmp_path: Path, script: str, *, worker: str = "") -> Iterator[Djdeploy]:
    """The CLI on a copy of the sample whose djdeploy.toml runs ``script`` (Python) as its
    [worker] command, with ``worker``'s further [worker] keys; the emulator stopped after."""
    source = tmp_path / "project"
    shutil.copytree(SAMPLE, source)
    command = json.dumps(["python", "-c", script])
    config = f'source = "."\n[worker]\ncommand = {command}\n{worker}'
    (source / "djdeploy.toml").write_text(config)
    state = tmp_path / "state"
    handle = Djdeploy(state, source)
    try:
        yield handle
    finally:
        handle("emulator", "stop", "--state-dir", str(state), check=False)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Djdeploy]:
    with sample_with_worker(tmp_path, WORKER) as handle:
        yield handle


def workers(cli: Djdeploy) -> list[str]:
    """The worker pool instances running."""
    return [p["what"] for p in cli.local()["processes"] if "/workerPools/" in p["what"]]


def worker_markers(cli: Djdeploy) -> set[str]:
    return {n for n in media_objects(cli) if n.startswith("worker-")}


def admin_password(cli: Djdeploy) -> str:
    from google.cloud import secretmanager

    client = secretmanager.SecretManagerServiceClient(**gapic_options(cli.endpoint()))
    name = f"projects/{PROJECT}/secrets/demo-django-superuser-password/versions/latest"
    return client.access_secret_version(name=name).payload.data.decode()


def media_objects(cli: Djdeploy) -> list[str]:
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project=PROJECT,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=cli.endpoint()),
    )
    return [b.name for b in client.list_blobs("djdeploy-demo-demo-django-media")]


def csrf_of(site: Site, path: str) -> tuple[str, str]:
    """The CSRF cookie and the form's token of a page."""
    page = site.get(path)
    assert page.status == 200, page.body[-500:]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.body)
    assert token is not None
    return page.cookie("csrftoken"), token.group(1)


def test_up_serves_the_app_locally_through_a_day_of_changes(cli: Djdeploy) -> None:
    # -- a fresh up: built, migrated, served; the URL answers after the command returned ------
    result, _ = cli.up()
    assert result["ok"] and result["local_url"], result
    site = Site(result["local_url"])
    assert site.get("/health/").status == 200
    # status without --tenant: the tenant's URLs, its health probed at the front door
    done = cli("status", "--emulator", "--state-dir", str(cli.state), "--json")
    [served] = json.loads(done.stdout)["tenants"]["demo"]["services"]
    assert (served["local_url"], served["health"]) == (result["local_url"], "ok"), served
    home = site.get("/")
    assert home.status == 200 and "djdeploy sample: uploads" in home.body

    # the admin login works with the generated superuser's password
    cookie, token = csrf_of(site, "/admin/login/")
    login = site.post_form(
        "/admin/login/?next=/admin/",
        fields={
            "csrfmiddlewaretoken": token,
            "username": "admin",
            "password": admin_password(cli),
            "next": "/admin/",
        },
        csrf=cookie,
    )
    assert login.status == 302 and login.headers["Location"].endswith("/admin/"), login.body[-800:]
    assert login.cookie("sessionid")

    # a media upload lands in the bucket, and its row in the migrated database
    cookie, token = csrf_of(site, "/")
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(64)
    upload = site.post_form(
        "/",
        fields={"csrfmiddlewaretoken": token, "title": "first-upload"},
        csrf=cookie,
        files={"file": ("pic.png", png)},
    )
    assert upload.status == 302, upload.body[-800:]
    assert any(n.startswith("uploads/") and n.endswith(".png") for n in media_objects(cli))
    assert "first-upload" in site.get("/").body

    # the worker runs its command (its marker is in the bucket), one instance
    assert eventually(lambda: len(worker_markers(cli)) == 1), media_objects(cli)
    assert len(workers(cli)) == 1

    # -- a second up starts nothing new ---------------------------------------------------------
    serving, running = revisions(cli), pids(cli)
    again, _ = cli.up()
    assert again["ok"]
    assert [s["step"] for s in again["steps"] if s["first"]["action"] != "noop"] == []
    assert revisions(cli) == serving and pids(cli) == running

    # -- a code change: one new revision serves it, the old one is stopped -----------------------
    template = cli.source / "uploads" / "templates" / "uploads" / "index.html"
    template.write_text(template.read_text().replace("uploads</h1>", "uploads, version two</h1>"))
    changed, _ = cli.up()
    assert changed["ok"], changed
    assert "version two" in site.get("/").body
    now_serving = revisions(cli)
    assert len(now_serving) == 1 and now_serving != serving
    # a retired revision's instance is stopped after the traffic moved (SIGTERM, then its grace),
    # and the worker's instance of the old image too: the new image's worker runs instead
    assert eventually(lambda: not (running & pids(cli))), "the old revision's instance still runs"
    assert eventually(lambda: len(worker_markers(cli)) == 2), media_objects(cli)
    assert len(workers(cli)) == 1

    # -- a rollback serves the previous revision again (its instance had stopped), --undo the
    # latest: each starts the instance of the revision the traffic moved to, and returns once
    # it answers -------------------------------------------------------------------------------
    def serves(text: str, present: bool) -> bool:
        answer = site.get("/")
        return answer.status == 200 and (text in answer.body) == present

    target = ["--tenant", "demo", "--emulator", "--state-dir", str(cli.state)]
    cli("rollback", *target)
    assert serves("version two", False), site.get("/").body[-300:]
    cli("rollback", *target, "--undo")
    assert serves("version two", True), site.get("/").body[-300:]
    assert eventually(lambda: revisions(cli) == now_serving), revisions(cli)

    # -- a wrong worker command: up fails in one line, the last good worker runs on -------------
    wrong = cli.source.parent / "wrong-worker.toml"  # outside the source: the same image
    wrong.write_text('[worker]\ncommand = "celery -A wrongname worker"\n')
    good_worker = workers(cli)
    args = ["--source", str(cli.source), "--config", str(wrong), "--json"]
    done = cli(*cli._target("up"), *args, check=False)
    broken = json.loads(done.stdout)
    assert done.returncode == 1 and not broken["ok"]
    worker = next(s for s in broken["steps"] if s["step"] == "worker")
    assert "before it started" in worker["error"], worker
    assert "djdeploy logs --tenant demo --worker" in worker["error"], worker
    assert workers(cli) == good_worker
    logs = cli("logs", "--tenant", "demo", "--emulator", "--state-dir", str(cli.state), "--worker")
    exits = re.findall(r"Container called exit\((\d+)\)\.", logs.stdout)
    assert exits and exits[-1] != "0", logs.stdout[-2000:]  # celery: not found, or no such app

    # -- a failing migration: migrate fails with its reason, the previous revision serves on -----
    (cli.source / "uploads" / "migrations" / "0002_broken.py").write_text(
        "from django.db import migrations\n\n\n"
        "def fail(apps, schema_editor):\n"
        "    raise RuntimeError('this migration is broken on purpose')\n\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('uploads', '0001_initial')]\n"
        "    operations = [migrations.RunPython(fail)]\n"
    )
    failed, done = cli.up(check=False)
    assert done.returncode == 1 and not failed["ok"]
    migrate = next(s for s in failed["steps"] if s["step"] == "migrate")
    assert (
        "its last error: migrate: migrate failed: RuntimeError: this migration is broken on purpose"
        in migrate["error"]
    ), migrate
    logs = cli(
        "logs",
        "--tenant",
        "demo",
        "--emulator",
        "--state-dir",
        str(cli.state),
        "--job",
        "migrate",
        check=False,
    )
    assert "this migration is broken on purpose" in logs.stdout + logs.stderr
    assert revisions(cli) == now_serving
    assert "version two" in site.get("/").body

    # -- the emulator stopped and started again: the app serves again at the same URL -----------
    (cli.source / "uploads" / "migrations" / "0002_broken.py").unlink()
    cli("emulator", "stop", "--state-dir", str(cli.state))
    assert eventually(lambda: processes_under(cli.state) == []), processes_under(cli.state)
    restarted, _ = cli.up()
    assert restarted["ok"] and restarted["local_url"] == result["local_url"]
    assert site.get("/health/").status == 200
    assert "first-upload" in site.get("/").body

    # -- destroy: nothing of the app runs any more ----------------------------------------------
    assert eventually(lambda: len(workers(cli)) == 1), "the worker did not run again"
    cli(*cli._target("destroy"), "--yes")
    assert eventually(lambda: cli.local()["revisions"] == {})
    assert eventually(lambda: workers(cli) == []), workers(cli)
    cli("emulator", "stop", "--state-dir", str(cli.state))
    assert eventually(lambda: processes_under(cli.state) == []), processes_under(cli.state)
