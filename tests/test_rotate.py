"""`djdeploy secrets rotate` and `api.rotate_secrets` against the emulator, and the rotation
step's decisions on hand-made observations.

The whole-deployment scenarios go through the CLI (real clients over HTTP): each kind rotated,
the old version disabled only once the new revision is ready, SECRET_KEY_FALLBACKS, a run
stopped at each point of a rotation (an injected 400 ends the command there, as kill -9 would;
what it leaves is the state the next command reads) then finished by `up` or `rotate`, and no
secret value in any output or transcript.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from deployer import api
from deployer.config import Config
from deployer.emulator.local.postgres import UNAVAILABLE, find_binaries
from deployer.emulator.testing import EmulatorHandle
from deployer.gcp.clients import ClientFactory
from deployer.gcp.cloud import Cloud
from deployer.steps.base import Action
from deployer.steps.rotation import ROTATING, Rotation
from deployer.steps.secrets import age
from deployer.steps.sql import PASSWORD_LABEL
from tests.container.container_helpers import pbkdf2_checks
from tests.contract import check_transcript
from tests.test_scenarios import (
    GOLDEN,
    PROJECT,
    TENANT,
    assert_golden,
    djdeploy,
    normalise,
    status_json,
    up,
)

REGION = "europe-west1"
PREFIX = f"{TENANT}-django"
DB = f"{PREFIX}-db-password"
KEY = f"{PREFIX}-secret-key"
ADMIN = f"{PREFIX}-superuser-password"
SERVICE = PREFIX
JOBS = (f"{PREFIX}-db-init", f"{PREFIX}-migrate")


# -- reading the live cloud ----------------------------------------------------------------------


def cloud_of(emulator: EmulatorHandle) -> Cloud:
    return Cloud(PROJECT, REGION, ClientFactory(endpoint=emulator.url, project=PROJECT))


def states(cloud: Cloud, sid: str) -> dict[int, str]:
    """version number -> state."""
    return {
        int(v["name"].rsplit("/", 1)[-1]): v["state"]
        for v in cloud.secrets.list_versions(sid) or []
    }


def labels(cloud: Cloud, sid: str) -> dict[str, str]:
    return dict((cloud.secrets.get_secret(sid) or {}).get("labels") or {})


def env_pins(template: dict[str, Any]) -> dict[str, str]:
    """env name -> pinned version of each secret env var of a template."""
    out = {}
    for e in template["containers"][0]["env"]:
        ref = (e.get("valueSource") or {}).get("secretKeyRef")
        if ref:
            out[e["name"]] = str(ref["version"])
    return out


def service_pins(cloud: Cloud) -> dict[str, str]:
    service = cloud.run.get_service(SERVICE)
    assert service is not None
    return env_pins(service["template"])


def job_pins(cloud: Cloud, job: str) -> dict[str, str]:
    found = cloud.run.get_job(job)
    assert found is not None
    return env_pins(found["template"]["template"])


def values(cloud: Cloud) -> list[str]:
    """Every generated secret value there is (to search the outputs for them)."""
    out = []
    for sid in (DB, KEY, ADMIN):
        for number, state in states(cloud, sid).items():
            if state == "ENABLED":
                out.append(cloud.secrets.access(sid, str(number)).reveal())
    return out


def rotate(emulator: EmulatorHandle, *args: str) -> tuple[int, str]:
    return djdeploy(emulator, "secrets", "rotate", "--tenant", TENANT, *args)


def assert_rotated_once(cloud: Cloud) -> None:
    """A db-password rotation finished, whatever stopped it on the way: one new version, the
    password set from it, every reader pinning it, the old one disabled, the label gone."""
    assert states(cloud, DB) == {1: "DISABLED", 2: "ENABLED"}
    assert labels(cloud, DB).get(PASSWORD_LABEL) == "2"
    assert ROTATING not in labels(cloud, DB)
    assert service_pins(cloud)["DB_PASSWORD"] == "2"
    assert all(job_pins(cloud, job)["DB_PASSWORD"] == "2" for job in JOBS)


# -- whole deployments ---------------------------------------------------------------------------


@pytest.mark.slow
def test_rotate_db_password_in_order_and_without_its_value(emulator: EmulatorHandle) -> None:
    assert up(emulator)[0] == 0
    cloud = cloud_of(emulator)
    before = values(cloud)
    emulator.control.clear_transcript()

    code, output = rotate(emulator, "--secret", "db-password")
    assert code == 0, output
    assert f"db-password (secret {DB}): rotated, version 1 -> 2" in output
    assert_rotated_once(cloud)
    assert states(cloud, KEY) == {1: "ENABLED"} and states(cloud, ADMIN) == {1: "ENABLED"}

    transcript = emulator.control.transcript()
    assert check_transcript(transcript) == []
    order = [
        i
        for i, e in enumerate(transcript)
        if (e["method"], e["path"].rsplit("/", 1)[-1])
        in {("PUT", "users"), ("PATCH", SERVICE), ("POST", "1:disable")}
    ]
    kinds = [transcript[i]["path"].rsplit("/", 1)[-1] for i in order]
    assert kinds == ["users", SERVICE, "1:disable"], kinds  # user first, disable last

    status = status_json(emulator)
    info = next(s["info"] for s in status["steps"] if s["step"] == "secrets")
    assert info[f"secret {DB}"] == "version 2" and f"secret {DB} age" in info
    code, text = djdeploy(emulator, "status", "--tenant", TENANT)
    assert code == 0 and f"secret {DB}: version 2, " in text and " old (created " in text
    for value in before + values(cloud):
        assert value not in output + text + str(transcript)


@pytest.mark.slow
def test_secret_key_keeps_the_previous_one_as_fallback(emulator: EmulatorHandle) -> None:
    assert up(emulator)[0] == 0
    cloud = cloud_of(emulator)
    assert "SECRET_KEY_FALLBACKS" not in service_pins(cloud)  # never rotated: no fallback

    code, output = rotate(emulator, "--secret", "secret-key", "--json")
    assert code == 0, output
    assert states(cloud, KEY) == {1: "ENABLED", 2: "ENABLED"}  # 1 is the fallback now
    pins = service_pins(cloud)
    assert (pins["SECRET_KEY"], pins["SECRET_KEY_FALLBACKS"]) == ("2", "1")
    assert job_pins(cloud, JOBS[1])["SECRET_KEY_FALLBACKS"] == "1"
    assert states(cloud, DB) == {1: "ENABLED"}  # the others untouched

    code, output = rotate(emulator, "--secret", "secret-key")
    assert code == 0, output
    assert "version 2 kept enabled as SECRET_KEY_FALLBACKS" in output
    assert states(cloud, KEY) == {1: "DISABLED", 2: "ENABLED", 3: "ENABLED"}
    pins = service_pins(cloud)
    assert (pins["SECRET_KEY"], pins["SECRET_KEY_FALLBACKS"]) == ("3", "2")
    code, output = djdeploy(emulator, "plan", "--tenant", TENANT)
    assert code == 0, output


@pytest.mark.slow
def test_all_three_at_once_take_one_new_revision(emulator: EmulatorHandle) -> None:
    assert up(emulator)[0] == 0
    cloud = cloud_of(emulator)
    emulator.control.clear_transcript()
    code, output = rotate(emulator)
    assert code == 0, output
    assert output.count(": rotated, version 1 -> 2") == 3
    deploys = [
        e
        for e in emulator.control.transcript()
        if e["method"] == "PATCH" and e["path"].endswith(f"/services/{SERVICE}")
    ]
    assert len(deploys) == 1
    assert_rotated_once(cloud)
    assert states(cloud, KEY) == {1: "ENABLED", 2: "ENABLED"}
    assert states(cloud, ADMIN) == {1: "ENABLED", 2: "ENABLED"}  # 1: the previous password


def migrate_runs(cloud: Cloud) -> int:
    return len(cloud.run.list_executions(JOBS[1]))


@pytest.mark.slow
def test_admin_password_through_the_python_api(emulator: EmulatorHandle) -> None:
    """The rotation runs migrate once (with the new password and the previous one), keeps the
    previous version enabled for it, and leaves nothing pending; the next rotation retires it."""
    assert up(emulator)[0] == 0
    cloud = cloud_of(emulator)
    runs = migrate_runs(cloud)
    config = Config(tenant=TENANT, project=PROJECT, region=REGION)
    target = api.Target(endpoint=emulator.url, time_scale=0.001)
    result = api.rotate_secrets(config, kinds=["admin-password"], target=target)
    assert result.ok
    [rotated] = result.rotations
    assert (rotated.kind, rotated.old, rotated.new, rotated.done) == (
        "admin-password",
        "1",
        "2",
        True,
    )
    assert states(cloud, ADMIN) == {1: "ENABLED", 2: "ENABLED"}
    pins = job_pins(cloud, JOBS[1])
    assert (pins["DJANGO_SUPERUSER_PASSWORD"], pins["DJANGO_SUPERUSER_PASSWORD_PREVIOUS"]) == (
        "2",
        "1",
    )
    assert "DJANGO_SUPERUSER_PASSWORD" not in service_pins(cloud)
    assert "DJANGO_SUPERUSER_PASSWORD_PREVIOUS" not in job_pins(cloud, JOBS[0])
    assert migrate_runs(cloud) == runs + 1
    code, output = djdeploy(emulator, "plan", "--tenant", TENANT)
    assert code == 0, output
    assert up(emulator)[0] == 0 and migrate_runs(cloud) == runs + 1  # once, not at every up

    code, output = rotate(emulator, "--secret", "admin-password")
    assert code == 0, output
    assert "version 2 kept enabled as the previous password" in output
    assert "a superuser that still had the generated password now has the new one" in output
    assert states(cloud, ADMIN) == {1: "DISABLED", 2: "ENABLED", 3: "ENABLED"}
    assert migrate_runs(cloud) == runs + 2


@pytest.mark.slow
def test_the_old_version_stays_enabled_until_the_new_revision_is_ready(
    emulator: EmulatorHandle,
) -> None:
    assert up(emulator)[0] == 0
    cloud = cloud_of(emulator)
    # the new revision fails (up deploys a failed revision again once): nothing is disabled
    emulator.control.fail("revision", SERVICE, "Container failed to start", times=2)
    code, output = rotate(emulator, "--secret", "db-password")
    assert code == 1, output
    assert "rotation from version 1 not finished" in output
    assert states(cloud, DB) == {1: "ENABLED", 2: "ENABLED"}
    assert labels(cloud, DB)[ROTATING] == "1"
    code, text = djdeploy(emulator, "status", "--tenant", TENANT)
    assert f"secret {DB}: version 2" in text and "rotating from version 1" in text
    code, text = djdeploy(emulator, "plan", "--tenant", TENANT)
    assert code == 2 and "rotation" in text  # unfinished: pending, never silently dropped

    emulator.control.clear_outcomes()
    code, output = up(emulator)  # up finishes it: no new version, no roll back
    assert code == 0, output
    assert_rotated_once(cloud)


STOPS = {
    # where the run stops (an injected 400: no retry), as method and path regex
    "before-the-new-version": ("POST", r":addVersion$"),
    "before-the-database-password": ("PUT", r"/users$"),
    "before-the-job-definitions": ("PATCH", rf"/jobs/{JOBS[0]}$"),
    "before-the-new-revision": ("PATCH", rf"/services/{SERVICE}$"),
    "before-disabling-the-old-version": ("POST", r"/versions/1:disable$"),
}


@pytest.mark.slow
@pytest.mark.parametrize("finish", ["up", "rotate"])
@pytest.mark.parametrize("stop", list(STOPS))
def test_a_rotation_stopped_anywhere_is_finished_by_the_next_command(
    emulator: EmulatorHandle, stop: str, finish: str
) -> None:
    assert up(emulator)[0] == 0
    cloud = cloud_of(emulator)
    method, path = STOPS[stop]
    emulator.control.add_fault(method=method, path=path, code=400, times=1)
    code, output = rotate(emulator, "--secret", "db-password")
    assert code == 1, output
    assert emulator.control.faults() == [], "the fault never fired"
    assert labels(cloud, DB)[ROTATING] == "1"  # the rotation is recorded in the cloud
    assert states(cloud, DB)[1] == "ENABLED"

    if finish == "up":
        code, output = up(emulator)
    else:
        code, output = rotate(emulator, "--secret", "db-password")
        assert "(finished an interrupted rotation)" in output
    assert code == 0, output
    assert_rotated_once(cloud)  # one new version: never regenerated, never rolled back


@pytest.mark.slow
def test_a_lost_answer_to_the_new_version_adds_no_second_one(emulator: EmulatorHandle) -> None:
    """addVersion is not safe to repeat: its answer lost (the version was added), the secrets
    step finds that version instead of adding another."""
    assert up(emulator)[0] == 0
    cloud = cloud_of(emulator)
    emulator.control.add_fault(action="drop", method="POST", path=r":addVersion$", times=1)
    code, output = djdeploy(
        emulator,
        "--request-timeout",
        "5",
        "secrets",
        "rotate",
        "--tenant",
        TENANT,
        "--secret",
        "db-password",
    )
    assert code == 0, output
    assert emulator.control.faults() == [], "the fault never fired"
    assert_rotated_once(cloud)


@pytest.mark.slow
def test_kill_9_after_the_password_changed_then_up_finishes_it(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """The worst moment: the SQL user's password is the new one, the serving revision reads
    the old one. The next `up` (taking over the killed run's lease) deploys the new revision
    and only then disables the old version."""
    assert up(emulator)[0] == 0
    cloud = cloud_of(emulator)
    env = {**os.environ, "GOOGLE_CLOUD_PROJECT": PROJECT, "DJDEPLOY_TENANT": TENANT}
    cmd = [sys.executable, "-m", "deployer", "--endpoint", emulator.url, "--time-scale", "0.01"]
    proc = subprocess.Popen(
        [*cmd, "secrets", "rotate", "--tenant", TENANT, "--secret", "db-password"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 120  # bounds a failure, never decides a pass
    while not any(
        e["method"] == "PUT" and e["path"].endswith("/users") for e in emulator.control.transcript()
    ):
        assert time.monotonic() < deadline and proc.poll() is None, "no password update"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert labels(cloud, DB)[ROTATING] == "1"
    code, output = up(emulator)
    assert code == 0, output
    assert_rotated_once(cloud)


@pytest.mark.slow
def test_a_failing_deployment_is_fixed_before_anything_is_rotated(
    emulator: EmulatorHandle,
) -> None:
    assert up(emulator)[0] == 0
    cloud = cloud_of(emulator)
    # the migrate job, not the service: the refusal of a tenant not deployed reads that first
    emulator.control.add_fault(method="GET", path=rf"/jobs/{JOBS[1]}$", code=400, times=1)
    code, output = rotate(emulator, "--secret", "db-password")
    assert code == 1, output
    assert "nothing rotated: the deployment is brought up to date first" in output
    assert states(cloud, DB) == {1: "ENABLED"} and ROTATING not in labels(cloud, DB)


@pytest.mark.slow
def test_a_tenant_not_deployed_is_refused_without_a_write(emulator: EmulatorHandle) -> None:
    """A misspelt tenant, or one destroyed with its data (its secrets) kept: one line, exit 1,
    and nothing made (no up deploying the whole tenant first)."""
    refusal = [
        f"error: service {SERVICE} does not exist in project {PROJECT}: nothing to rotate "
        f"(`djdeploy status` lists the tenants; `djdeploy up --tenant {TENANT}` deploys it)"
    ]
    code, output = rotate(emulator, "--secret", "secret-key")
    assert (code, output.strip().splitlines()) == (1, refusal), output
    assert [e for e in emulator.control.transcript() if e["method"] not in ("GET", "HEAD")] == []

    assert up(emulator)[0] == 0
    assert djdeploy(emulator, "destroy", "--tenant", TENANT)[0] == 0
    cloud = cloud_of(emulator)
    assert states(cloud, KEY) == {1: "ENABLED"}  # kept without --delete-data
    emulator.control.clear_transcript()
    code, output = rotate(emulator, "--secret", "secret-key")
    assert (code, output.strip().splitlines()) == (1, refusal), output
    assert [e for e in emulator.control.transcript() if e["method"] not in ("GET", "HEAD")] == []
    assert cloud.run.get_service(SERVICE) is None and states(cloud, KEY) == {1: "ENABLED"}


@pytest.mark.slow
def test_golden_transcript(emulator: EmulatorHandle) -> None:
    """What a db-password rotation sends after an up: its writes counted, its reads as a set."""
    assert up(emulator)[0] == 0
    emulator.control.clear_transcript()
    assert rotate(emulator, "--secret", "db-password")[0] == 0
    assert_golden(GOLDEN / "rotate-db-password.json", normalise(emulator.control.transcript()))


@pytest.mark.slow
@pytest.mark.skipif(find_binaries() is None, reason=UNAVAILABLE)
def test_on_a_real_postgres_open_connections_survive_and_only_the_new_password_logs_in(
    executing_emulator: EmulatorHandle,
) -> None:
    """With local execution, Cloud SQL is a real PostgreSQL: what docs/rotate.md says of the
    window. A connection opened with the old password keeps working after users.update; a new
    one needs the new password."""
    assert up(executing_emulator)[0] == 0
    cloud = cloud_of(executing_emulator)
    [server] = executing_emulator.control.local()["sql"]
    socket_dir = str(Path(server["layoutSocket"]).parent)

    def login(password: str) -> psycopg.Connection:
        return psycopg.connect(
            host=socket_dir, user="demo_django", password=password, dbname="demo_django"
        )

    old = cloud.secrets.access(DB, "1").reveal()
    with login(old) as before:
        code, output = rotate(executing_emulator, "--secret", "db-password")
        assert code == 0, output
        assert before.execute("SELECT 1").fetchone() == (1,)  # opened before: still works
    assert_rotated_once(cloud)
    with login(cloud.secrets.access(DB, "2").reveal()) as after:
        assert after.execute("SELECT current_user").fetchone() == ("demo_django",)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        login(old).close()


@pytest.mark.slow
@pytest.mark.skipif(find_binaries() is None, reason=UNAVAILABLE)
def test_on_a_real_postgres_the_superuser_follows_the_admin_password(
    executing_emulator: EmulatorHandle,
) -> None:
    """The migrate job really runs: a superuser still on the generated password gets the new
    one; after a human changed it, the next rotation keeps the human's."""

    # real builds and processes on a loaded machine: the steps' timeouts at a tenth, not 0.001
    def run(*args: str) -> None:
        code, output = djdeploy(executing_emulator, *args, "--tenant", TENANT, scale="0.1")
        assert code == 0, output

    run("up")
    cloud = cloud_of(executing_emulator)
    [server] = executing_emulator.control.local()["sql"]
    socket_dir = str(Path(server["layoutSocket"]).parent)
    password = cloud.secrets.access(DB, "1").reveal()

    def query(sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(
            host=socket_dir, user="demo_django", password=password, dbname="demo_django"
        ) as conn:
            return conn.execute(sql).fetchall()

    def stored() -> str:
        [(encoded,)] = query("SELECT password FROM auth_user WHERE is_superuser")
        return str(encoded)

    def admin(version: str) -> str:
        return cloud.secrets.access(ADMIN, version).reveal()

    assert pbkdf2_checks(stored(), admin("1"))
    run("secrets", "rotate", "--secret", "admin-password")
    assert pbkdf2_checks(stored(), admin("2")) and not pbkdf2_checks(stored(), admin("1"))

    query("UPDATE auth_user SET password = 'set-by-hand' WHERE is_superuser RETURNING id")
    run("secrets", "rotate", "--secret", "admin-password")
    assert stored() == "set-by-hand"


def test_a_bad_secret_kind_is_one_line_before_any_call(emulator: EmulatorHandle) -> None:
    emulator.control.clear_transcript()
    code, output = rotate(emulator, "--secret", "api-key")
    assert code == 1
    assert output.strip().splitlines() == [
        "error: --secret 'api-key' is not a generated secret: use one of db-password, "
        "secret-key, admin-password (or leave it out to rotate all three)"
    ]
    assert emulator.control.transcript() == []


# -- the rotation step's decisions ----------------------------------------------------------------


CONFIG = Config(tenant=TENANT, project=PROJECT, region=REGION)
STEP = Rotation(CONFIG, jobs=JOBS)


def version(n: int, state: str = "ENABLED") -> dict[str, str]:
    return {"name": f"projects/1/secrets/x/versions/{n}", "state": state}


def seen(
    sid: str,
    kind: str,
    versions: list[dict[str, str]],
    *,
    service: set[tuple[str, str]],
    ready: bool = True,
    password: str | None = None,
) -> dict[str, Any]:
    return {
        "rotations": {sid: {"kind": kind, "from": "1", "password": password, "versions": versions}},
        "service_ready": ready,
        "readers": {f"service {SERVICE}": service, **{f"job {j}": service for j in JOBS}},
    }


def test_nothing_labelled_is_nothing_to_do() -> None:
    assert STEP.diff(None).action is Action.NOOP


def test_the_old_version_waits_for_every_reader_and_the_password() -> None:
    versions = [version(2), version(1)]
    old = seen(DB, "db-password", versions, service={(DB, "1")}, password="2")
    change = STEP.diff(old)
    assert change.action is Action.WAIT
    assert f"service {SERVICE} still reads version 1" in change.reason
    unset = seen(DB, "db-password", versions, service={(DB, "2")}, password="1")
    assert "database password is not yet set from version 2" in STEP.diff(unset).reason
    rolling = seen(DB, "db-password", versions, service={(DB, "2")}, ready=False, password="2")
    assert "new revision is not ready" in STEP.diff(rolling).reason
    done = seen(DB, "db-password", versions, service={(DB, "2")}, password="2")
    change = STEP.diff(done)
    assert change.action is Action.UPDATE
    assert [(f.path, f.new) for f in change.fields] == [
        (f"{DB}.versions.1", "DISABLED"),
        (f"{DB}.labels.{ROTATING}", None),
    ]


def test_a_pinned_revision_that_reads_the_old_version_is_refused_not_waited_for() -> None:
    """A rollback's pin (set while a rotation was under way): the pinned revision serves and
    no deploy changes what it reads, so the rotation stops with one reason, never disabling
    what it reads and never waiting for a change that will not come."""
    versions = [version(2), version(1)]
    observed = seen(DB, "db-password", versions, service={(DB, "2")}, password="2")
    observed["pinned"] = (f"{SERVICE}-00001-abc", {(DB, "1")})
    change = STEP.diff(observed)
    assert change.action is Action.REFUSE and not change.fields
    assert str(change.failure) == (
        f"the service is pinned to {SERVICE}-00001-abc by `djdeploy rollback`, and it reads "
        f"version 1 of secret {DB}, which finishing the rotation disables: run `djdeploy "
        f"rollback --tenant {TENANT} --undo`, then this command again"
    )
    observed["pinned"] = (f"{SERVICE}-00003-xyz", {(DB, "2")})  # pinned to one reading the new
    assert STEP.diff(observed).action is Action.UPDATE


def test_the_secret_key_keeps_one_fallback() -> None:
    versions = [version(3), version(2), version(1)]
    pins = {(KEY, "3"), (KEY, "2")}
    change = STEP.diff(seen(KEY, "secret-key", versions, service=pins))
    assert [f.path for f in change.fields] == [f"{KEY}.versions.1", f"{KEY}.labels.{ROTATING}"]
    first = STEP.diff(seen(KEY, "secret-key", [version(2), version(1)], service={(KEY, "2")}))
    assert [f.path for f in first.fields] == [f"{KEY}.labels.{ROTATING}"]  # 1: the fallback


def test_the_admin_password_keeps_the_previous_one_for_migrate() -> None:
    migrate = f"job {JOBS[1]}"
    versions = [version(2), version(1)]
    observed = seen(ADMIN, "admin-password", versions, service=set())
    observed["readers"][migrate] = {(ADMIN, "2"), (ADMIN, "1")}  # new, previous
    change = STEP.diff(observed)
    assert [f.path for f in change.fields] == [f"{ADMIN}.labels.{ROTATING}"]  # 1 stays enabled
    observed["readers"][migrate] = {(ADMIN, "1")}  # not updated yet
    assert f"{migrate} still reads version 1" in STEP.diff(observed).reason
    third = seen(ADMIN, "admin-password", [version(3), *versions], service=set())
    third["readers"][migrate] = {(ADMIN, "3"), (ADMIN, "2")}
    assert [f.path for f in STEP.diff(third).fields] == [
        f"{ADMIN}.versions.1",
        f"{ADMIN}.labels.{ROTATING}",
    ]


def test_a_new_version_disabled_by_hand_abandons_the_rotation() -> None:
    versions = [version(2, "DISABLED"), version(1)]
    change = STEP.diff(seen(DB, "db-password", versions, service={(DB, "1")}, password="1"))
    assert change.action is Action.UPDATE
    assert [f.path for f in change.fields] == [f"{DB}.labels.{ROTATING}"]
    assert change.info[f"rotation {DB}"] == "abandoned (version 1 kept)"


def test_a_killed_run_between_disable_and_label_only_removes_the_label() -> None:
    versions = [version(2), version(1, "DISABLED")]
    change = STEP.diff(seen(DB, "db-password", versions, service={(DB, "2")}, password="2"))
    assert [f.path for f in change.fields] == [f"{DB}.labels.{ROTATING}"]


def test_a_label_naming_no_version_is_refused_and_disables_nothing() -> None:
    observed = seen(DB, "db-password", [version(2), version(1)], service={(DB, "2")})
    observed["rotations"][DB]["from"] = "v1"
    change = STEP.diff(observed)
    assert change.action is Action.REFUSE and not change.fields
    assert f"--remove-labels={ROTATING}" in str(change.failure)


def test_age_reads_as_two_units() -> None:
    assert [age(s) for s in (0, 12, 423, 18720, 3 * 86400 + 4 * 3600 + 5)] == [
        "0s",
        "12s",
        "7m 3s",
        "5h 12m",
        "3d 4h",
    ]
