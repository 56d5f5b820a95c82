"""The container against real projects and a real PostgreSQL 15.

For the sample project and a fresh `django-admin startproject` (left unmodified): db-init and
migrate twice each, check --deploy, then gunicorn through `entrypoint.sh serve`, once per project.
"""

from __future__ import annotations

import contextlib
import json
import mimetypes
import re
import secrets
import shutil
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from container_helpers import (
    HOST,
    SAMPLE,
    VENV_BIN,
    Server,
    Tenant,
    cloudsql_dir,
    create_tenant,
    drop_tenant,
    http_get,
    run_entrypoint,
    start_server,
    stop_server,
    tenant_env,
    tenant_query,
)

pytestmark = pytest.mark.slow  # real Django projects built and migrated

HTTPS = {"Host": HOST, "X-Forwarded-Proto": "https"}
SERVE_ONLY_USER = "serve-must-not-create"


@dataclass
class Deployment:
    kind: str
    root: Path
    app: Path
    tenant: Tenant
    env: dict[str, str]
    runs: dict[str, subprocess.CompletedProcess] = field(default_factory=dict)
    state: dict[str, object] = field(default_factory=dict)
    server: Server | None = None

    @property
    def secrets(self) -> list[str]:
        return [self.env["DB_PASSWORD"], self.env["SECRET_KEY"], *self.state["su_passwords"]]

    def output(self) -> str:
        text = "".join(r.stdout + r.stderr for r in self.runs.values())
        return text + (self.server.log() if self.server else "")


def schema_state(tenant: Tenant) -> list[tuple]:
    return tenant_query(
        tenant,
        "SELECT (SELECT array_agg(extname ORDER BY extname) FROM pg_extension), "
        "(SELECT nspacl::text FROM pg_namespace WHERE nspname = 'public')",
    )


def superusers(tenant: Tenant) -> list[tuple]:
    return tenant_query(
        tenant, "SELECT username, password FROM auth_user WHERE is_superuser ORDER BY id"
    )


def make_project(kind: str, app: Path) -> None:
    if kind == "sample":
        shutil.copytree(SAMPLE, app, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
    else:
        app.mkdir()
        subprocess.run(
            [str(VENV_BIN / "django-admin"), "startproject", "mysite", str(app)], check=True
        )


def deploy(kind: str, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp(kind)
    app = root / "app"
    make_project(kind, app)
    tenant = create_tenant(kind[:6])
    sockets = contextlib.ExitStack()
    d: Deployment | None = None
    try:
        env = tenant_env(tenant, app, sockets.enter_context(cloudsql_dir()), root)
        d = Deployment(kind, root, app, tenant, env)
        first_password = env["DJANGO_SUPERUSER_PASSWORD"]
        second_password = "su2-" + secrets.token_urlsafe(18)
        d.state["su_passwords"] = [first_password, second_password]

        d.runs["db-init-1"] = run_entrypoint(env, "db-init")
        d.state["schema-1"] = schema_state(tenant)
        d.runs["db-init-2"] = run_entrypoint(env, "db-init")
        d.state["schema-2"] = schema_state(tenant)

        d.runs["migrate-1"] = run_entrypoint(env, "migrate")
        d.state["superusers-1"] = superusers(tenant)
        # Files that must survive a second migrate (collectstatic without --clear).
        keep_static = Path(env["STATIC_ROOT"]) / "keep-me.txt"
        keep_static.write_text("static kept")
        media = Path(env["MEDIA_ROOT"])
        media.mkdir(parents=True, exist_ok=True)
        (media / "upload-kept.txt").write_text("upload kept")
        d.runs["migrate-2"] = run_entrypoint(
            {**env, "DJANGO_SUPERUSER_PASSWORD": second_password}, "migrate"
        )
        d.state["superusers-2"] = superusers(tenant)

        d.runs["check"] = run_entrypoint(
            env, "manage", "check", "--deploy", "--fail-level", "WARNING"
        )
        serve_env = {
            **env,
            "GOOGLE_CLOUD_PROJECT": "test-proj",
            "DJANGO_SUPERUSER_USERNAME": SERVE_ONLY_USER,
        }
        d.server = start_server(serve_env, root / "serve.log")
        yield d
    finally:
        if d is not None and d.server is not None:
            d.state["shutdown_seconds"] = stop_server(d.server)
        drop_tenant(tenant)
        sockets.close()


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    yield from deploy("sample", tmp_path_factory)


@pytest.fixture(scope="module")
def startproject(tmp_path_factory):
    yield from deploy("startproject", tmp_path_factory)


@pytest.fixture(scope="module", params=["sample", "startproject"])
def deployment(request) -> Deployment:
    return request.getfixturevalue(request.param)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# ---- db-init ------------------------------------------------------------------------------------


def test_db_init_creates_extensions_and_grants_public(deployment: Deployment) -> None:
    out = ok(deployment.runs["db-init-1"])
    assert "created extension citext" in out and "created extension pg_trgm" in out
    assert f"granted USAGE, CREATE on schema public to {deployment.tenant.user}" in out
    extensions, acl = deployment.state["schema-1"][0]
    assert {"citext", "pg_trgm"} <= set(extensions)
    assert f"{deployment.tenant.user}=UC/" in acl


def test_db_init_second_run_changes_nothing(deployment: Deployment) -> None:
    out = ok(deployment.runs["db-init-2"])
    assert "no changes" in out
    assert deployment.state["schema-2"] == deployment.state["schema-1"]


# ---- migrate ------------------------------------------------------------------------------------


def test_migrate_twice(deployment: Deployment) -> None:
    first = ok(deployment.runs["migrate-1"])
    second = ok(deployment.runs["migrate-2"])
    assert "No migrations to apply" not in first + second  # Django's own text is not printed
    entries = json_lines(first) + json_lines(second)
    assert len(entries) == len((first + second).splitlines()), "every line is JSON"
    messages = [e["message"] for e in entries]
    assert any(re.fullmatch(r"migrate: applied \d+ migration\(s\)", m) for m in messages)
    assert "migrate: no migrations to apply" in messages
    collected = [m for m in messages if m.startswith("collectstatic: ")]
    assert len(collected) == 2 and "static files copied" in collected[0]
    owners = tenant_query(
        deployment.tenant,
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'",
    )
    assert owners == [(deployment.tenant.user,)]
    assert (Path(deployment.env["STATIC_ROOT"]) / "admin" / "css" / "base.css").is_file()


def test_superuser_created_once_and_password_not_reset(deployment: Deployment) -> None:
    first, second = deployment.state["superusers-1"], deployment.state["superusers-2"]
    assert [u for u, _ in first] == ["admin"]
    assert second == first  # same user, same password hash after a run with another password
    assert "superuser 'admin' created" in deployment.runs["migrate-1"].stderr
    assert "superuser 'admin' exists: left unchanged" in deployment.runs["migrate-2"].stderr


def test_migrate_never_clears_static_or_media(deployment: Deployment) -> None:
    assert (Path(deployment.env["STATIC_ROOT"]) / "keep-me.txt").read_text() == "static kept"
    assert (Path(deployment.env["MEDIA_ROOT"]) / "upload-kept.txt").is_file()


def test_check_deploy_is_clean(deployment: Deployment) -> None:
    out = ok(deployment.runs["check"])
    assert "System check identified no issues" in out


# ---- serve --------------------------------------------------------------------------------------


def test_health_liveness_answers_any_host_over_http(deployment: Deployment) -> None:
    # Cloud Run's probes: plain HTTP, the instance address as Host.
    status, _, body = http_get(deployment.server.base + "/health/", {"Host": "10.1.2.3:8080"})
    assert status == 200
    assert json.loads(body) == {"status": "ok"}


@pytest.mark.parametrize("path", ["/health/ready/", "/health/?ready=1"])
def test_health_readiness_checks_the_database(deployment: Deployment, path: str) -> None:
    status, _, body = http_get(deployment.server.base + path, {"Host": "10.1.2.3:8080"})
    assert status == 200
    assert json.loads(body) == {"status": "ok", "database": "ok"}


def test_admin_login_page(deployment: Deployment) -> None:
    status, headers, body = http_get(deployment.server.base + "/admin/login/", HTTPS)
    assert status == 200
    assert b"csrfmiddlewaretoken" in body
    assert "max-age=31536000" in headers.get("Strict-Transport-Security", "")


def test_plain_http_is_redirected_to_https(deployment: Deployment) -> None:
    status, headers, _ = http_get(deployment.server.base + "/admin/login/", {"Host": HOST})
    assert status == 301
    assert headers["Location"] == f"https://{HOST}/admin/login/"


@pytest.mark.parametrize(
    "host",
    [
        "evil.example.com",
        "other-abcdefghij-ew.a.run.app",  # another service's older host
        "app-test-abcdefghij-uc.a.run.app",  # another region's
        "x.app-test-abcdefghij-ew.a.run.app",
    ],
)
def test_unknown_host_is_refused(deployment: Deployment, host: str) -> None:
    status, _, _ = http_get(
        deployment.server.base + "/admin/login/", {"Host": host, "X-Forwarded-Proto": "https"}
    )
    assert status == 400


def test_static_file_served(deployment: Deployment) -> None:
    status, headers, body = http_get(deployment.server.base + "/static/admin/css/base.css", HTTPS)
    assert status == 200
    assert headers["Content-Type"].startswith("text/css")
    expected = Path(deployment.env["STATIC_ROOT"]) / "admin" / "css" / "base.css"
    assert body == expected.read_bytes()


def test_superuser_logs_in_with_first_password(deployment: Deployment) -> None:
    status, headers = post_form(
        deployment.server,
        "/admin/login/?next=/admin/",
        {"username": "admin", "password": deployment.state["su_passwords"][0]},
    )
    assert status == 302, "login with the first password failed"
    assert headers["Location"] == "/admin/"


def test_superuser_logs_in_on_the_older_run_app_host(deployment: Deployment) -> None:
    """The service's a.run.app host, allowed by its pattern (its hash is Cloud Run's): the
    login page and the CSRF check pass on it, with no CSRF_TRUSTED_ORIGINS entry for it."""
    host = "app-test-abcdefghij-ew.a.run.app"
    status, headers = post_form(
        deployment.server,
        "/admin/login/?next=/admin/",
        {"username": "admin", "password": deployment.state["su_passwords"][0]},
        host=host,
    )
    assert status == 302, "login on the a.run.app host failed"
    assert headers["Location"] == "/admin/"


def test_serve_never_creates_a_superuser(deployment: Deployment) -> None:
    rows = tenant_query(
        deployment.tenant, f"SELECT count(*) FROM auth_user WHERE username = '{SERVE_ONLY_USER}'"
    )
    assert rows == [(0,)]


def test_upload_written_to_media_root(sample: Deployment) -> None:
    content = b"\x89PNG\r\n\x1a\n upload test " + secrets.token_bytes(8).hex().encode()
    status, _ = post_form(
        sample.server, "/", {"title": "greeting"}, files={"file": ("hello.png", content)}
    )
    assert status == 302, "upload refused"
    stored = list(Path(sample.env["MEDIA_ROOT"]).glob("uploads/*/*/hello*.png"))
    assert len(stored) == 1 and stored[0].read_bytes() == content
    # and served back from MEDIA_URL, inline (a raster image) but sandboxed
    relative = stored[0].relative_to(sample.env["MEDIA_ROOT"]).as_posix()
    status, headers, body = http_get(f"{sample.server.base}/media/{relative}", HTTPS)
    assert status == 200 and body == content
    assert headers["Content-Type"] == "image/png"
    assert headers["Content-Security-Policy"] == "sandbox"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert not headers.get("Content-Disposition", "").startswith("attachment")


@pytest.mark.parametrize("name", ["x.html", "x.svg", "x.js", "x.xml", "x.txt", "x"])
def test_sample_refuses_uploads_a_browser_could_run(sample: Deployment, name: str) -> None:
    status, _ = post_form(
        sample.server, "/", {"title": "xss"}, files={"file": (name, b"<script>alert(1)</script>")}
    )
    assert status == 200  # the form again, with its error; nothing stored
    assert not list(Path(sample.env["MEDIA_ROOT"]).glob(f"uploads/*/*/{name.split('.')[0]}*"))


@pytest.mark.parametrize("name", ["x.html", "x.svg", "x.xml", "x.js", "x.pdf", "x.unknownext"])
def test_media_other_than_raster_images_is_a_sandboxed_attachment(
    deployment: Deployment, name: str
) -> None:
    """A file stored some other way (the admin, a project's own view) is served safely too."""
    media = Path(deployment.env["MEDIA_ROOT"])
    (media / name).write_bytes(b"<script>alert(document.cookie)</script>")
    status, headers, _ = http_get(f"{deployment.server.base}/media/{name}", HTTPS)
    assert status == 200
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    assert headers["Content-Type"].split(";")[0] == content_type
    assert headers["Content-Disposition"] == f'attachment; filename="{name}"'
    assert headers["Content-Security-Policy"] == "sandbox"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_logs_are_cloud_logging_json_with_trace(deployment: Deployment) -> None:
    trace = secrets.token_hex(16)
    http_get(
        deployment.server.base + "/no-such-page/",
        {**HTTPS, "X-Cloud-Trace-Context": f"{trace}/123;o=1"},
    )
    log = deployment.server.log()
    entries = [json.loads(line) for line in log.splitlines() if line.strip()]  # all JSON
    assert all("severity" in e and "message" in e for e in entries)
    not_found = [e for e in entries if "Not Found: /no-such-page/" in e["message"]]
    assert not_found and not_found[0]["severity"] == "WARNING"
    assert not_found[0]["logging.googleapis.com/trace"] == f"projects/test-proj/traces/{trace}"
    assert not_found[0]["logging.googleapis.com/spanId"] == "123"
    access = [e for e in entries if '"GET /health/ HTTP/1.1" 200' in e["message"]]
    assert access and access[0]["logger"] == "gunicorn.access"
    assert access[0]["message"].startswith("127.0.0.1 ")


def test_access_log_names_the_forwarded_client(deployment: Deployment) -> None:
    """Behind Cloud Run's front end the peer is the proxy; X-Forwarded-For's first address is
    the client."""
    path = "/health/?client=" + secrets.token_hex(4)
    http_get(deployment.server.base + path, {"X-Forwarded-For": "203.0.113.7, 10.0.0.1"})
    lines: list[str] = []
    deadline = time.monotonic() + 5
    while not lines and time.monotonic() < deadline:  # written after the response is sent
        time.sleep(0.05)
        log = deployment.server.log().splitlines()
        lines = [json.loads(line)["message"] for line in log if path in line]
    assert lines and lines[0].startswith("203.0.113.7 "), lines


def test_secrets_never_logged(deployment: Deployment) -> None:
    http_get(deployment.server.base + "/health/ready/")
    output = deployment.output()
    assert output
    for value in deployment.secrets:
        assert value not in output


# ---- helpers ------------------------------------------------------------------------------------


def post_form(
    server: Server,
    path: str,
    fields: dict[str, str],
    files: dict[str, tuple[str, bytes]] | None = None,
    *,
    host: str = HOST,
) -> tuple[int, dict[str, str]]:
    """GET the form for its CSRF cookie and token, then POST it as a browser would over HTTPS.

    Cookies are carried by hand: they are Secure, and the test talks plain HTTP to gunicorn.
    """
    https = {**HTTPS, "Host": host}
    status, headers, body = http_get(server.base + path, https)
    assert status == 200, body[:500]
    cookie = re.search(r"csrftoken=([^;]+)", headers.get("Set-Cookie", ""))
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body)
    assert cookie and token
    boundary = "djdeploy" + secrets.token_hex(8)
    parts = []
    for name, value in {**fields, "csrfmiddlewaretoken": token.group(1).decode()}.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        parts.append(f"{head}{value}\r\n".encode())
    for name, (filename, content) in (files or {}).items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + content
            + b"\r\n"
        )
    data = b"".join(parts) + f"--{boundary}--\r\n".encode()
    status, headers, body = http_get(
        server.base + path,
        {
            **https,
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Cookie": f"csrftoken={cookie.group(1)}",
            "Origin": f"https://{host}",
            "Referer": f"https://{host}{urllib.parse.urlsplit(path).path}",
        },
        data=data,
    )
    return status, headers
