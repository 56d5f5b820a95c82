"""Bad input: one clear log line, a non-zero exit, in bounded time; never a hang."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from container_helpers import (
    CONNECTION_NAME,
    SAMPLE,
    admin_connect,
    base_env,
    cloudsql_dir,
    create_tenant,
    drop_tenant,
    http_get,
    one_line,
    run_entrypoint,
    secret_key,
    start_server,
    stop_server,
    tenant_env,
)
from psycopg import sql

pytestmark = pytest.mark.slow  # processes against PostgreSQL, waiting on their exits

DB_PASSWORD = "dbpw-must-never-show-4f1c"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A complete environment whose database never answers (an empty /cloudsql-style dir)."""
    app = tmp_path / "app"
    shutil.copytree(SAMPLE, app, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
    empty_socket_dir = tmp_path / "sock" / CONNECTION_NAME
    empty_socket_dir.mkdir(parents=True)
    return {
        **base_env(),
        "APP_HOME": str(app),
        "SECRET_KEY": secret_key(),
        "DB_NAME": "nodb",
        "DB_USER": "nouser",
        "DB_PASSWORD": DB_PASSWORD,
        "DB_HOST": str(empty_socket_dir),
        "DB_PORT": "5432",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "STATIC_ROOT": str(tmp_path / "static"),
        "ALLOWED_HOSTS": "app.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://app.example.com",
        "DJANGO_SUPERUSER_USERNAME": "admin",
        "DJANGO_SUPERUSER_EMAIL": "admin@example.com",
        "DJANGO_SUPERUSER_PASSWORD": "su-must-never-show-9b2e",
        "DB_WAIT_SECONDS": "2",
    }


def fails_with_one_line(env: dict[str, str], *args: str, within: float = 15) -> dict:
    started = time.monotonic()
    result = run_entrypoint(env, *args, timeout=within + 30)
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert elapsed < within, f"took {elapsed:.1f}s"
    line = one_line(result)
    for secret in (env.get("DB_PASSWORD"), env.get("SECRET_KEY"), "su-must-never-show-9b2e"):
        assert not secret or secret not in line
    entry = json.loads(line)
    assert entry["severity"] == "ERROR"
    return entry


@pytest.mark.parametrize("command", ["serve", "migrate", "manage"])
def test_no_manage_py(env: dict[str, str], tmp_path: Path, command: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    entry = fails_with_one_line({**env, "APP_HOME": str(empty)}, command)
    assert entry["message"].startswith(f"no manage.py in {empty}")


def test_manage_py_without_settings_module(env: dict[str, str]) -> None:
    manage = Path(env["APP_HOME"]) / "manage.py"
    manage.write_text("import django\n")
    entry = fails_with_one_line(env, "serve")
    assert entry["message"].startswith("no settings module found")
    assert "DJANGO_PROJECT_SETTINGS" in entry["message"]


def test_settings_module_that_does_not_exist(env: dict[str, str]) -> None:
    entry = fails_with_one_line({**env, "DJANGO_PROJECT_SETTINGS": "nosuch.settings"}, "migrate")
    assert entry["message"].startswith("settings module 'nosuch.settings' ")


@pytest.mark.parametrize("command", ["migrate", "db-init"])
def test_database_that_never_answers(env: dict[str, str], command: str) -> None:
    entry = fails_with_one_line(env, command, within=10)
    assert "did not answer within 2s" in entry["message"]
    assert env["DB_HOST"] in entry["message"]


def test_missing_environment(env: dict[str, str]) -> None:
    del env["SECRET_KEY"], env["ALLOWED_HOSTS"]
    entry = fails_with_one_line(env, "serve")
    assert entry["message"] == (
        "serve: required environment variable(s) not set: SECRET_KEY ALLOWED_HOSTS"
    )


def test_unknown_command(env: dict[str, str]) -> None:
    entry = fails_with_one_line(env, "runserver")
    assert entry["message"].startswith("unknown command 'runserver'")


def test_invalid_extension_name(env: dict[str, str]) -> None:
    entry = fails_with_one_line({**env, "DB_EXTENSIONS": "citext,bad;drop"}, "db-init")
    assert "invalid extension names: bad;drop" in entry["message"]


def test_db_init_without_rights_says_what_to_run(tmp_path: Path) -> None:
    """A user that is not a member of the database's owner cannot be granted by itself."""
    tenant = create_tenant("norights")
    try:
        with admin_connect() as conn:  # a plain user, as a database owned by someone else
            conn.execute(
                sql.SQL("REVOKE {} FROM {}").format(
                    sql.Identifier(tenant.owner), sql.Identifier(tenant.user)
                )
            )
        with cloudsql_dir() as socket_dir:
            env = tenant_env(tenant, tmp_path, socket_dir, tmp_path)
            env["DB_EXTENSIONS"] = ""
            entry = fails_with_one_line(env, "db-init")
        assert f'GRANT USAGE, CREATE ON SCHEMA public TO "{tenant.user}"' in entry["message"]
        assert tenant.password not in entry["message"]
    finally:
        drop_tenant(tenant)


def test_serve_without_database_is_live_not_ready_and_stops_in_time(
    env: dict[str, str], tmp_path: Path
) -> None:
    server = start_server(env, tmp_path / "serve.log")
    try:
        status, _, _ = http_get(server.base + "/health/")
        assert status == 200
        status, _, body = http_get(server.base + "/health/ready/")
        assert status == 503
        assert json.loads(body)["database"] == "error"
    finally:
        elapsed = stop_server(server)
    # Cloud Run kills the container 10 s after SIGTERM.
    assert elapsed < 10
    assert server.process.returncode in (0, -signal.SIGTERM)
    log = server.log()
    assert "readiness check failed: database unavailable" in log
    assert DB_PASSWORD not in log and env["SECRET_KEY"] not in log


def test_commands_never_hang_on_a_closed_stdin(env: dict[str, str]) -> None:
    """manage createsuperuser would prompt; without a terminal it must fail, not wait."""
    result = subprocess.run(
        [
            str(Path(__file__).resolve().parents[2] / "container" / "entrypoint.sh"),
            "manage",
            "createsuperuser",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0


def test_settings_that_need_an_unset_variable(env: dict[str, str]) -> None:
    """A settings module reading os.environ["X"] at import: one line, not a traceback."""
    settings = Path(env["APP_HOME"]) / "djsample" / "settings.py"
    settings.write_text(settings.read_text() + '\nAPI_KEY = os.environ["SOMETHING_UNSET"]\n')
    for command in ("serve", "migrate", "manage"):
        entry = fails_with_one_line(env, command)
        assert entry["message"].startswith(
            "settings module 'djsample.settings' failed to import: KeyError: 'SOMETHING_UNSET';"
        )
        assert "os.environ.get" in entry["message"] and "docs/container.md" in entry["message"]


@pytest.mark.parametrize("hosts", ["*", "app.example.com, * "])
def test_allowed_hosts_wildcard_is_refused(env: dict[str, str], hosts: str) -> None:
    for command in ("serve", "manage"):
        entry = fails_with_one_line({**env, "ALLOWED_HOSTS": hosts}, command)
        assert entry["message"].startswith("ALLOWED_HOSTS must not contain '*'")


def test_log_lines_stay_json_whatever_the_message(env: dict[str, str]) -> None:
    command = 'bad\x01\r\n"\\\tcmd'
    entry = fails_with_one_line(env, command)
    assert entry["message"].startswith("unknown command 'bad   \"\\ cmd'")


@pytest.mark.parametrize(
    ("change", "wording"),
    [
        ({"DB_USER": "no_such_role_djd"}, 'role "no_such_role_djd" does not exist'),
        ({"DB_NAME": "no_such_db_djd"}, 'database "no_such_db_djd" does not exist'),
    ],
)
@pytest.mark.parametrize("command", ["migrate", "db-init"])
def test_a_rejected_login_fails_at_once(
    tmp_path: Path, command: str, change: dict[str, str], wording: str
) -> None:
    """Not retried for DB_WAIT_SECONDS, not reported as 'did not answer'."""
    tenant = create_tenant("reject")
    try:
        with cloudsql_dir() as socket_dir:
            env = {**tenant_env(tenant, tmp_path, socket_dir, tmp_path), "DB_WAIT_SECONDS": "20"}
            shutil.copytree(SAMPLE, tmp_path / "app")
            env["APP_HOME"] = str(tmp_path / "app")
            entry = fails_with_one_line({**env, **change}, command, within=8)
        assert "rejected the connection" in entry["message"]
        assert wording in entry["message"]
        assert "did not answer" not in entry["message"]
        assert tenant.password not in entry["message"]
    finally:
        drop_tenant(tenant)


def test_migrate_stops_on_sigterm(env: dict[str, str]) -> None:
    """Cloud Run stops a job with SIGTERM: nothing of the job may keep running."""
    process = subprocess.Popen(
        [str(Path(__file__).resolve().parents[2] / "container" / "entrypoint.sh"), "migrate"],
        env={**env, "DB_WAIT_SECONDS": "60"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        time.sleep(3)  # waiting for the database by now
        assert process.poll() is None
        process.terminate()
        process.wait(timeout=5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("a process of the migrate job outlived SIGTERM")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode != 0


def test_health_answers_on_the_configured_path(env: dict[str, str], tmp_path: Path) -> None:
    server = start_server({**env, "HEALTH_PATH": "/healthz/"}, tmp_path / "serve.log")
    try:  # start_server waited for /healthz/ to answer 200
        status, _, body = http_get(server.base + "/healthz/?ready=1")
        assert status == 503  # no database here: not ready
        assert json.loads(body)["database"] == "error"
        status, _, _ = http_get(server.base + "/health/", {"Host": "10.1.2.3:8080"})
        assert status != 200  # the default path is the project's now (refused host: 400)
    finally:
        stop_server(server)


def test_run_without_a_program(env: dict[str, str]) -> None:
    entry = fails_with_one_line(env, "run")
    assert entry["message"].startswith("run: give the program to run")


def test_run_execs_the_program_in_the_project_with_the_runtime_settings(
    env: dict[str, str],
) -> None:
    """The [worker]'s command (docs/worker.md): its imports find the project's packages and the
    settings Django loads are the runtime's, which import the project's."""
    code = (
        "import os, django; from django.conf import settings; django.setup(); "
        "import djsample; "
        "print(os.environ['DJANGO_SETTINGS_MODULE'], settings.ROOT_URLCONF, os.getcwd())"
    )
    result = run_entrypoint(env, "run", "python3", "-c", code)
    assert result.returncode == 0, result.stderr
    settings_module, urlconf, cwd = result.stdout.split()
    assert settings_module == "djdeploy_runtime.settings"
    assert urlconf.startswith("djsample.")
    assert cwd == env["APP_HOME"]
