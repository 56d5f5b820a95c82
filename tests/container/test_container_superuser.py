"""The superuser after a rotation of its password secret, on a real PostgreSQL 15.

The sample project migrated with one generated password, then with a new one and the previous
one (as the migrate job gets them after `djdeploy secrets rotate --secret admin-password`): the
password moves to the new one while it is still the generated one, and a password a human set
is kept (docs/rotate.md).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from container_helpers import (
    SAMPLE,
    Tenant,
    cloudsql_dir,
    create_tenant,
    drop_tenant,
    pbkdf2_checks,
    run_entrypoint,
    tenant_env,
    tenant_query,
)

pytestmark = pytest.mark.slow  # the sample project migrated four times


def stored_hash(tenant: Tenant) -> str:
    [(encoded,)] = tenant_query(tenant, "SELECT password FROM auth_user WHERE username = 'admin'")
    return str(encoded)


def pbkdf2(password: str) -> str:
    """A hash as Django stores it: what a human changing the password in the admin leaves."""
    salt, iterations = secrets.token_hex(8), 100_000
    raw = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(raw).decode()}"


@pytest.fixture
def migrated(tmp_path: Path) -> Iterator[tuple[Tenant, dict[str, str]]]:
    """The sample project, db-init and a first migrate run: the superuser created."""
    app = tmp_path / "app"
    shutil.copytree(SAMPLE, app, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
    tenant = create_tenant("su")
    with contextlib.ExitStack() as stack:
        stack.callback(drop_tenant, tenant)
        env = tenant_env(tenant, app, stack.enter_context(cloudsql_dir()), tmp_path)
        for command in ("db-init", "migrate"):
            run = run_entrypoint(env, command)
            assert run.returncode == 0, run.stderr
        assert "superuser 'admin' created" in run.stderr
        yield tenant, env


def rotated_migrate(env: dict[str, str], *, new: str, previous: str) -> str:
    run = run_entrypoint(
        {**env, "DJANGO_SUPERUSER_PASSWORD": new, "DJANGO_SUPERUSER_PASSWORD_PREVIOUS": previous},
        "migrate",
    )
    assert run.returncode == 0, run.stderr
    output = run.stdout + run.stderr
    assert new not in output and previous not in output
    return output


def test_an_unchanged_password_moves_to_the_new_version(
    migrated: tuple[Tenant, dict[str, str]],
) -> None:
    tenant, env = migrated
    first, second = env["DJANGO_SUPERUSER_PASSWORD"], "su2-" + secrets.token_urlsafe(18)
    assert pbkdf2_checks(stored_hash(tenant), first)

    output = rotated_migrate(env, new=second, previous=first)
    assert "superuser 'admin': password set from the rotated secret" in output
    assert pbkdf2_checks(stored_hash(tenant), second) and not pbkdf2_checks(
        stored_hash(tenant), first
    )

    again = stored_hash(tenant)  # the same pair again (a later migrate run): nothing to do
    output = rotated_migrate(env, new=second, previous=first)
    assert "superuser 'admin' exists: left unchanged" in output
    assert stored_hash(tenant) == again


def test_a_password_a_human_set_is_kept(migrated: tuple[Tenant, dict[str, str]]) -> None:
    tenant, env = migrated
    human = pbkdf2("chosen-by-a-human")
    tenant_query(
        tenant, f"UPDATE auth_user SET password = '{human}' WHERE username = 'admin' RETURNING id"
    )

    output = rotated_migrate(
        env, new="su2-" + secrets.token_urlsafe(18), previous=env["DJANGO_SUPERUSER_PASSWORD"]
    )
    assert "its password is not the previous generated one (changed by hand): left unchanged" in (
        output
    )
    assert stored_hash(tenant) == human
