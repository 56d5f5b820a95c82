"""Unit tests of the runtime package's pieces (no database, no server)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from container_helpers import CONTAINER

sys.path.insert(0, str(CONTAINER))

from djdeploy_runtime import discover, jsonlog, pyproject_deps
from djdeploy_runtime.dbinit import DbInitError, extensions_from_env
from djdeploy_runtime.gunicorn_conf import available_cpus


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")', "mysite.settings"),
        ("os.environ.setdefault( 'DJANGO_SETTINGS_MODULE' ,\n 'a.b.prod' )", "a.b.prod"),
        ('os.environ["DJANGO_SETTINGS_MODULE"] = "x.settings"', "x.settings"),
        ("os.environ[ 'DJANGO_SETTINGS_MODULE' ]='y.conf'", "y.conf"),
        ('os.environ.get("DJANGO_SETTINGS_MODULE", "x.settings")', None),
        ("", None),
    ],
)
def test_settings_from_manage_py(text: str, expected: str | None) -> None:
    assert discover.settings_from_manage_py(text) == expected


def test_explicit_project_settings_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "manage.py").write_text(
        'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "from_manage.settings")'
    )
    monkeypatch.setenv("DJANGO_PROJECT_SETTINGS", "explicit.settings")
    assert discover.find_settings_module(tmp_path) == "explicit.settings"
    monkeypatch.delenv("DJANGO_PROJECT_SETTINGS")
    assert discover.find_settings_module(tmp_path) == "from_manage.settings"


def test_the_runtime_is_not_a_project_settings_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "manage.py").write_text("")
    monkeypatch.setenv("DJANGO_PROJECT_SETTINGS", "djdeploy_runtime.settings")
    with pytest.raises(discover.DiscoveryError, match="that is the runtime"):
        discover.find_settings_module(tmp_path)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("105445aa7843bc8bf206b12000100000/1;o=1", ("105445aa7843bc8bf206b12000100000", "1", True)),
        ("abcdef0123", ("abcdef0123", None, False)),
        ("abc/77;o=0", ("abc", "77", False)),
        ("not hex/1", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_trace_header(header: str | None, expected: tuple | None) -> None:
    assert jsonlog.parse_trace_header(header) == expected


def test_formatter_writes_cloud_logging_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-proj")
    record = logging.LogRecord("app", logging.WARNING, "/x.py", 7, 'say "%s"', ("hi",), None)
    token = jsonlog.current_trace.set(("abc123", "9", True))
    try:
        entry = json.loads(jsonlog.CloudLoggingFormatter().format(record))
    finally:
        jsonlog.current_trace.reset(token)
    assert entry["severity"] == "WARNING"
    assert entry["message"] == 'say "hi"'
    assert entry["logging.googleapis.com/trace"] == "projects/my-proj/traces/abc123"
    assert entry["logging.googleapis.com/spanId"] == "9"
    assert entry["logging.googleapis.com/trace_sampled"] is True
    assert entry["logging.googleapis.com/sourceLocation"]["line"] == "7"


def test_formatter_without_project_or_request_has_no_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("a", logging.ERROR, "f", 1, "failed", (), sys.exc_info())
    token = jsonlog.current_trace.set(("abc", None, False))
    try:
        entry = json.loads(jsonlog.CloudLoggingFormatter().format(record))
    finally:
        jsonlog.current_trace.reset(token)
    assert "logging.googleapis.com/trace" not in entry
    assert entry["severity"] == "ERROR"
    assert (
        entry["message"].startswith("failed\nTraceback") and "ValueError: boom" in entry["message"]
    )


@pytest.mark.parametrize(
    ("cpu_max", "expected"), [("200000 100000", 2), ("150000 100000", 2), ("50000 100000", 1)]
)
def test_cpus_from_cgroup_quota(tmp_path: Path, cpu_max: str, expected: int) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max + "\n")
    assert available_cpus(path) == expected


def test_cpus_without_quota_fall_back_to_affinity(tmp_path: Path) -> None:
    path = tmp_path / "cpu.max"
    path.write_text("max 100000\n")
    assert available_cpus(path) >= 1
    assert available_cpus(tmp_path / "missing") >= 1


def test_pyproject_dependencies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\ndependencies = ["Django>=5,<6", "pillow"]\n')
    assert pyproject_deps.main(["pyproject_deps.py", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == ["Django>=5,<6", "pillow"]
    path.write_text('[tool.poetry]\nname = "x"\n')
    assert pyproject_deps.main(["pyproject_deps.py", str(path)]) == 1
    assert "lists no [project].dependencies" in capsys.readouterr().err


def test_extension_names_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_EXTENSIONS", " citext, pg_trgm ,citext,,uuid-ossp")
    assert extensions_from_env() == ["citext", "pg_trgm", "uuid-ossp"]
    monkeypatch.setenv("DB_EXTENSIONS", 'x"; DROP TABLE y')
    with pytest.raises(DbInitError):
        extensions_from_env()


RESOLVED = """
import json
import subprocess
from django.conf import settings as s
print(json.dumps({
    "DEFAULT_DB": {k: v for k, v in s.DATABASES["default"].items() if k != "PASSWORD"},
    "DEBUG": s.DEBUG, "ALLOWED_HOSTS": s.ALLOWED_HOSTS, "CSRF": s.CSRF_TRUSTED_ORIGINS,
    "DB": {k: s.DATABASES["default"][k] for k in ("ENGINE", "NAME", "USER", "HOST", "PORT")},
    "OTHER_DBS": sorted(k for k in s.DATABASES if k != "default"),
    "MIDDLEWARE": s.MIDDLEWARE, "STORAGES": s.STORAGES, "SILENCED": s.SILENCED_SYSTEM_CHECKS,
    "MEDIA_ROOT": str(s.MEDIA_ROOT), "STATIC_ROOT": str(s.STATIC_ROOT), "KEEP": s.KEEP_ME,
    "GS_BUCKET_NAME": s.GS_BUCKET_NAME, "FALLBACKS": s.SECRET_KEY_FALLBACKS,
}))
"""

PROJECT_SETTINGS = """
SECRET_KEY = "django-insecure-project-key"
DEBUG = True
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.contenttypes", "django.contrib.auth", "django.contrib.staticfiles",
]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"},
    "legacy": {"ENGINE": "django.db.backends.sqlite3", "NAME": "legacy.sqlite3"},
}
DEFAULT_FILE_STORAGE = "django.core.files.storage.InMemoryStorage"
SILENCED_SYSTEM_CHECKS = ["project.W001"]
KEEP_ME = "kept"
"""


MANAGE_PY = (
    "import os, sys\n"
    'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.conf")\n'
    "from django.core.management import execute_from_command_line\n"
    "execute_from_command_line(sys.argv)\n"
)


def resolved_settings(
    tmp_path: Path,
    manage_py: str = MANAGE_PY,
    extra_settings: str = "",
    **env: str,
) -> dict:
    from container_helpers import ENTRYPOINT, base_env

    app = tmp_path / "proj"
    (app / "proj").mkdir(parents=True, exist_ok=True)
    (app / "proj" / "__init__.py").write_text("")
    (app / "proj" / "conf.py").write_text(PROJECT_SETTINGS + extra_settings)
    (app / "proj" / "other.py").write_text("from proj.conf import *  # noqa\nKEEP_ME = 'other'\n")
    (app / "manage.py").write_text(manage_py)
    result = subprocess.run(
        [str(ENTRYPOINT), "manage", "shell", "-c", RESOLVED],
        env={**base_env(), "APP_HOME": str(app), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # after shell's own banner


@pytest.mark.slow  # a Django process
def test_settings_overlay_applies_the_environment(tmp_path: Path) -> None:
    got = resolved_settings(
        tmp_path,
        SECRET_KEY="k" * 60,
        DB_NAME="n",
        DB_USER="u",
        DB_HOST="/cloudsql/p:r:i",
        DB_PORT="5432",
        ALLOWED_HOSTS=" a.run.app, b.example.com ,",
        CSRF_TRUSTED_ORIGINS="https://a.run.app",
        MEDIA_ROOT="/m",
        STATIC_ROOT="/s",
        GS_BUCKET_NAME="bucket",
    )
    assert got["DEBUG"] is False
    assert got["ALLOWED_HOSTS"] == ["a.run.app", "b.example.com"]
    assert got["CSRF"] == ["https://a.run.app"]
    assert got["DB"] == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "n",
        "USER": "u",
        "HOST": "/cloudsql/p:r:i",
        "PORT": "5432",
    }
    assert got["OTHER_DBS"] == ["legacy"]
    assert got["MIDDLEWARE"] == [
        "djdeploy_runtime.middleware.RequestContextMiddleware",
        "django.middleware.security.SecurityMiddleware",
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "djdeploy_runtime.middleware.MediaMiddleware",
        "django.middleware.common.CommonMiddleware",
    ]
    assert got["STORAGES"]["default"] == {"BACKEND": "django.core.files.storage.InMemoryStorage"}
    assert got["STORAGES"]["staticfiles"]["BACKEND"] == (
        "whitenoise.storage.CompressedManifestStaticFilesStorage"
    )
    assert got["SILENCED"] == ["project.W001", "security.W005", "security.W021"]
    assert (got["MEDIA_ROOT"], got["STATIC_ROOT"], got["KEEP"]) == ("/m", "/s", "kept")
    assert got["GS_BUCKET_NAME"] == "bucket"


@pytest.mark.slow  # a Django process
def test_the_previous_secret_key_comes_first_among_the_fallbacks(tmp_path: Path) -> None:
    """After `djdeploy secrets rotate`: SECRET_KEY_FALLBACKS from the environment (the key
    before the rotation), then the project's own; none of them the current key."""
    project = 'SECRET_KEY_FALLBACKS = ["project-old-key", "n" * 60]\n'
    env = {"DB_HOST": "h", "DB_NAME": "n", "DB_USER": "u", "SECRET_KEY": "n" * 60}
    got = resolved_settings(tmp_path, extra_settings=project, SECRET_KEY_FALLBACKS="o" * 60, **env)
    assert got["FALLBACKS"] == ["o" * 60, "project-old-key"]
    never_rotated = resolved_settings(tmp_path / "again", **env)
    assert never_rotated["FALLBACKS"] == []


@pytest.mark.slow  # a Django process
def test_settings_overlay_with_a_tcp_host_and_no_hosts(tmp_path: Path) -> None:
    got = resolved_settings(tmp_path, DB_HOST="10.0.0.5", DB_NAME="n", DB_USER="u")
    assert got["DB"]["HOST"] == "10.0.0.5" and got["DB"]["PORT"] == "5432"
    assert got["ALLOWED_HOSTS"] == []  # never "*", even when the project says so


@pytest.mark.slow  # a Django process
def test_database_settings_merge_into_the_projects_default(tmp_path: Path) -> None:
    backend = tmp_path / "proj" / "proj" / "backends" / "postgis"
    backend.mkdir(parents=True)
    for package in (backend.parent, backend):
        (package / "__init__.py").write_text("")
    (backend / "base.py").write_text(
        "from django.db.backends.postgresql.base import DatabaseWrapper  # noqa: F401\n"
    )
    got = resolved_settings(
        tmp_path,
        extra_settings=(
            # a PostGIS engine by name (GDAL, which Django's own needs, is not installed here)
            "DATABASES['default'] = {'ENGINE': 'proj.backends.postgis',\n"
            "    'NAME': 'local', 'HOST': 'localhost', 'ATOMIC_REQUESTS': True,\n"
            "    'CONN_MAX_AGE': 0, 'TEST': {'NAME': 'test_x'},\n"
            "    'OPTIONS': {'sslmode': 'disable', 'application_name': 'mine'}}\n"
        ),
        DB_NAME="n",
        DB_USER="u",
        DB_PASSWORD="pw",
        DB_HOST="/cloudsql/p:r:i",
    )
    db = got["DEFAULT_DB"]
    assert db["ENGINE"] == "proj.backends.postgis"
    assert (db["NAME"], db["USER"], db["HOST"], db["PORT"]) == ("n", "u", "/cloudsql/p:r:i", "5432")
    assert db["ATOMIC_REQUESTS"] is True
    assert db["CONN_MAX_AGE"] == 0
    assert db["TEST"]["NAME"] == "test_x"
    assert db["OPTIONS"] == {
        "sslmode": "disable",
        "application_name": "mine",
        "connect_timeout": 10,
    }


@pytest.mark.slow  # a Django process
def test_another_engines_options_are_dropped(tmp_path: Path) -> None:
    got = resolved_settings(
        tmp_path,
        extra_settings="DATABASES['default']['OPTIONS'] = {'timeout': 20}\n",
        DB_NAME="n",
        DB_USER="u",
        DB_HOST="h",
    )
    db = got["DEFAULT_DB"]
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert db["OPTIONS"] == {"connect_timeout": 10, "application_name": "djdeploy"}
    assert db["CONN_MAX_AGE"] == 60 and db["CONN_HEALTH_CHECKS"] is True


@pytest.mark.slow  # a Django process
def test_a_manage_py_that_assigns_the_settings_module_cannot_bypass_the_runtime(
    tmp_path: Path,
) -> None:
    manage_py = MANAGE_PY.replace(
        'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.conf")',
        'os.environ["DJANGO_SETTINGS_MODULE"] = "proj.conf"',
    )
    got = resolved_settings(tmp_path, manage_py=manage_py, DB_NAME="n", DB_USER="u", DB_HOST="h")
    assert got["DEBUG"] is False
    assert got["DB"]["ENGINE"] == "django.db.backends.postgresql"
    assert got["KEEP"] == "kept"


@pytest.mark.slow  # a Django process
def test_a_callers_settings_module_names_the_projects_settings(tmp_path: Path) -> None:
    got = resolved_settings(
        tmp_path, DJANGO_SETTINGS_MODULE="proj.other", DB_NAME="n", DB_USER="u", DB_HOST="h"
    )
    assert got["DEBUG"] is False  # still the runtime's settings...
    assert got["DB"]["ENGINE"] == "django.db.backends.postgresql"
    assert got["KEEP"] == "other"  # ...on top of the module the caller named


@pytest.mark.slow  # a Django process
def test_explicit_project_settings_win_over_the_callers_settings_module(tmp_path: Path) -> None:
    got = resolved_settings(
        tmp_path,
        DJANGO_SETTINGS_MODULE="proj.other",
        DJANGO_PROJECT_SETTINGS="proj.conf",
        DB_NAME="n",
        DB_USER="u",
        DB_HOST="h",
    )
    assert got["KEEP"] == "kept"


@pytest.mark.slow  # a Django process
def test_static_root_defaults_outside_the_project(tmp_path: Path) -> None:
    got = resolved_settings(tmp_path, DB_NAME="n", DB_USER="u", DB_HOST="h")
    assert got["STATIC_ROOT"] == "/srv/static"


@pytest.mark.parametrize("level", ["DEBUG", "warning", "nonsense", ""])
def test_log_level_knob(monkeypatch: pytest.MonkeyPatch, level: str) -> None:
    monkeypatch.setenv("DJANGO_LOG_LEVEL", level)
    expected = {"DEBUG": "DEBUG", "warning": "WARNING"}.get(level, "INFO")
    config = jsonlog.logging_config()
    assert config["root"]["level"] == expected
    assert config["loggers"]["django"]["level"] == expected
    assert config["loggers"]["gunicorn.access"]["level"] == "INFO"


def test_severity_of_a_custom_level_is_default() -> None:
    record = logging.LogRecord("a", 25, "f", 1, "custom", (), None)
    assert json.loads(jsonlog.CloudLoggingFormatter().format(record))["severity"] == "DEFAULT"


@pytest.mark.parametrize(
    ("path", "live", "ready"),
    [
        ("/health/", {"/health", "/health/"}, {"/health/ready", "/health/ready/"}),
        ("/healthz", {"/healthz", "/healthz/"}, {"/healthz/ready", "/healthz/ready/"}),
        ("/_/up/", {"/_/up", "/_/up/"}, {"/_/up/ready", "/_/up/ready/"}),
    ],
)
def test_health_paths_follow_health_path(path: str, live: set[str], ready: set[str]) -> None:
    from djdeploy_runtime.middleware import health_paths

    assert health_paths(path) == (frozenset(live), frozenset(ready))
