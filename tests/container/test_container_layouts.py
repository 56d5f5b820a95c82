"""Project layouts the runtime must take as they are: Django's tutorial static directory, a src
layout, a project without django.contrib.auth. Each migrated against the real PostgreSQL."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from container_helpers import (
    SAMPLE,
    VENV_BIN,
    cloudsql_dir,
    create_tenant,
    drop_tenant,
    run_entrypoint,
    tenant_env,
    tenant_query,
)

pytestmark = pytest.mark.slow  # real Django projects built and served


@pytest.fixture
def tenant_environment(tmp_path: Path):
    tenant = create_tenant("layout")
    try:
        with cloudsql_dir() as socket_dir:
            yield tenant, tenant_env(tenant, tmp_path / "app", socket_dir, tmp_path)
    finally:
        drop_tenant(tenant)


def messages(result: subprocess.CompletedProcess) -> list[str]:
    lines = (result.stdout + result.stderr).splitlines()
    return [json.loads(line)["message"] for line in lines if line.strip()]


def test_tutorial_static_directory(tmp_path: Path, tenant_environment) -> None:
    """STATICFILES_DIRS = [BASE_DIR / "static"]: the default STATIC_ROOT must not be inside it
    (staticfiles.E002), and the project's own static files are collected."""
    _, env = tenant_environment
    app = tmp_path / "app"
    app.mkdir()
    subprocess.run([str(VENV_BIN / "django-admin"), "startproject", "mysite", str(app)], check=True)
    settings = app / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + '\nSTATICFILES_DIRS = [BASE_DIR / "static"]\n')
    (app / "static").mkdir()
    (app / "static" / "site.css").write_text("body { color: teal }\n")

    # As in the image, where STATIC_ROOT is the runtime's default (here: unset).
    unset = {k: v for k, v in env.items() if k != "STATIC_ROOT"}
    check = run_entrypoint(unset, "manage", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "staticfiles.E002" not in check.stdout + check.stderr

    result = run_entrypoint(env, "migrate")
    assert result.returncode == 0, result.stdout + result.stderr
    collected = list(Path(env["STATIC_ROOT"]).glob("site.*.css"))
    assert collected, "the project's static/site.css was not collected"


def test_src_layout(tmp_path: Path, tenant_environment) -> None:
    """manage.py in APP_HOME/src, its packages importable from there."""
    tenant, env = tenant_environment
    app = tmp_path / "app"
    app.mkdir()
    shutil.copytree(SAMPLE, app / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (app / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["Django"]\n')
    result = run_entrypoint(env, "migrate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert tenant_query(tenant, "SELECT count(*) FROM uploads_upload") == [(0,)]
    shell = run_entrypoint(
        env, "manage", "shell", "-c", "from django.conf import settings; print(settings.DEBUG)"
    )
    assert shell.returncode == 0 and shell.stdout.strip().endswith("False"), shell.stderr


def test_project_without_auth(tmp_path: Path, tenant_environment) -> None:
    _, env = tenant_environment
    app = tmp_path / "app"
    (app / "noauth").mkdir(parents=True)
    (app / "noauth" / "__init__.py").write_text("")
    (app / "noauth" / "settings.py").write_text(
        'SECRET_KEY = "x"\nINSTALLED_APPS = ["django.contrib.contenttypes"]\n'
        'ROOT_URLCONF = "noauth.urls"\n'
    )
    (app / "noauth" / "urls.py").write_text("urlpatterns = []\n")
    (app / "manage.py").write_text(
        'import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", "noauth.settings")\n'
    )
    result = run_entrypoint(env, "migrate")
    assert result.returncode == 0, result.stdout + result.stderr
    said = messages(result)
    assert any("django.contrib.auth is not in INSTALLED_APPS" in m for m in said)
    assert said[-1] == "migrate: done"


def test_migrate_records_the_migrations_it_knows_and_the_applied_ones(
    tmp_path: Path, tenant_environment
) -> None:
    """The record `djdeploy rollback` reads: under MEDIA_ROOT (the media bucket's mount), named
    after the execution; without CLOUD_RUN_EXECUTION (not a Cloud Run job) none is written."""
    _, env = tenant_environment
    app = tmp_path / "app"
    shutil.copytree(SAMPLE, app, ignore=shutil.ignore_patterns("__pycache__"))
    result = run_entrypoint(env, "migrate")
    assert result.returncode == 0, result.stdout + result.stderr
    records = Path(env["MEDIA_ROOT"]) / ".djdeploy" / "migrations"
    assert not records.exists()
    assert "record: not a Cloud Run execution" in " ".join(messages(result))

    result = run_entrypoint({**env, "CLOUD_RUN_EXECUTION": "demo-django-migrate-ab12c"}, "migrate")
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads((records / "demo-django-migrate-ab12c.json").read_text())
    assert doc["execution"] == "demo-django-migrate-ab12c" and doc["version"] == 1
    assert "0001_initial" in doc["known"]["uploads"] and "0001_initial" in doc["known"]["auth"]
    assert doc["applied"] == doc["known"]  # migrate applied every migration it knows
    assert [p.name for p in records.iterdir()] == ["demo-django-migrate-ab12c.json"]
