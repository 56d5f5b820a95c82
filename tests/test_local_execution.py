"""Local execution end to end: `up` on the built-in emulator (execution on, its default) leaves a
real PostgreSQL behind Cloud SQL in which the deployer's database and user exist, with the
password the deployer generated and keeps in Secret Manager."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from google.cloud import secretmanager

from deployer.api import Target, up
from deployer.config import Config
from deployer.emulator import Emulator, serve
from deployer.emulator.local.postgres import UNAVAILABLE, find_binaries
from deployer.emulator.testing import gapic_options

pytestmark = pytest.mark.skipif(find_binaries() is None, reason=UNAVAILABLE)


@pytest.fixture
def state_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="lpx-", dir="/tmp"))  # short: the layout socket fits
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_up_leaves_a_database_the_app_user_can_log_in_to(state_dir: Path) -> None:
    result = up(
        Config(tenant="demo", project="acme-prod"),
        target=Target(emulator=True, state_dir=state_dir, time_scale=0.01),
    )
    assert result.ok, [r.error for r in result.results if r.error]

    # `up` has ended, and its emulator with it; the next one brings the server back
    running = serve(Emulator(state_dir=state_dir, execute=True))
    try:
        secrets = secretmanager.SecretManagerServiceClient(**gapic_options(running.url))
        name = "projects/acme-prod/secrets/demo-django-db-password/versions/latest"
        password = secrets.access_secret_version(name=name).payload.data.decode()
        [server] = running.control.local()["sql"]
        assert server["connectionName"] == "acme-prod:europe-west1:demo-django-pg"
        layout = Path(server["layoutSocket"]).parent
        with psycopg.connect(
            host=str(layout), user="demo_django", password=password, dbname="demo_django"
        ) as conn:
            conn.execute("CREATE TABLE app_table (x int)")  # the app user may create tables
            assert conn.execute("SELECT current_user").fetchone() == ("demo_django",)
    finally:
        running.stop()
