"""`djdeploy rollback` against the emulator: two deployments of two sources, then the traffic
pinned to the first, refused while the database has migrations its image does not know (the
migrate job's records), --force, the pin shown by plan and status and kept by up, --undo, and a
rollback killed with SIGKILL mid-way that the next one finishes.

The emulator does not run the migrate job's container, so the tests write the records it would
have written (container/djdeploy_runtime/migrate.py) into the media bucket themselves, through
the Storage API, under each succeeded migrate execution's name.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from deployer import api
from deployer.archive import container_dir
from deployer.config import Config
from deployer.emulator.testing import EmulatorHandle, storage_client
from deployer.rollbacks import (
    Migrations,
    RollbackRefused,
    check_migrations,
    pin_body,
    pinned_secrets,
    refusal,
    unreadable_secret,
)
from deployer.steps.service import PIN_ANNOTATION
from tests.test_lease_scenarios import Run, block, holds_lease, sent, until
from tests.test_scenarios import (
    GOLDEN,
    PROJECT,
    TENANT,
    assert_golden,
    djdeploy,
    normalise,
    status_json,
)

SERVICE = f"{TENANT}-django"
BUCKET = f"{PROJECT}-{TENANT}-django-media"
MIGRATE_JOB = f"{TENANT}-django-migrate"
V1 = {"blog": ["0001_initial"], "auth": ["0001_initial"]}
V2 = {"blog": ["0001_initial", "0002_tags"], "auth": ["0001_initial"]}


def sources(tmp_path: Path) -> tuple[Path, Path]:
    """Two versions of the sample project (two images)."""
    sample = container_dir() / "sample"
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    shutil.copytree(sample, v1, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(sample, v2, ignore=shutil.ignore_patterns("__pycache__"))
    (v2 / "VERSION").write_text("2\n")
    return v1, v2


def revisions(emulator: EmulatorHandle) -> list[str]:
    """The service's revisions, oldest first."""
    found = emulator.emu.store.list("run.revision", "")
    ordered = sorted(found, key=lambda kv: kv[1]["_serviceGeneration"])
    return [name.rsplit("/", 1)[-1] for name, _ in ordered]


def service(emulator: EmulatorHandle) -> dict[str, Any]:
    found = [v for _, v in emulator.emu.store.list("run.service", "")]
    assert len(found) == 1
    return found[0]


def record(emulator: EmulatorHandle, known: dict[str, list[str]]) -> None:
    """Write, for the newest migrate execution, what the container would have recorded: the
    migrations its image knows, all applied."""
    executions = sorted(
        (v for _, v in emulator.emu.store.list("run.execution", "") if v["job"] == MIGRATE_JOB),
        key=lambda e: e["createTime"],
    )
    eid = executions[-1]["name"].rsplit("/", 1)[-1]
    doc = {"version": 1, "execution": eid, "known": known, "applied": known}
    blob = (
        storage_client(emulator.url, PROJECT)
        .bucket(BUCKET)
        .blob(f".djdeploy/migrations/{eid}.json")
    )
    blob.upload_from_string(json.dumps(doc), content_type="application/json")


def two_deployments(emulator: EmulatorHandle, tmp_path: Path) -> tuple[str, str]:
    v1, v2 = sources(tmp_path)
    code, output = djdeploy(emulator, "up", "--tenant", TENANT, "--source", str(v1))
    assert code == 0, output
    record(emulator, V1)
    code, output = djdeploy(emulator, "up", "--tenant", TENANT, "--source", str(v2))
    assert code == 0, output
    record(emulator, V2)
    # one revision per up: the first serves v1, the second v2
    first, second = revisions(emulator)
    return first, second


def traffic(emulator: EmulatorHandle) -> list[dict[str, Any]]:
    return list(service(emulator)["traffic"])


@pytest.mark.slow
def test_rollback_refused_then_forced_pinned_kept_by_up_then_undone(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    first, second = two_deployments(emulator, tmp_path)
    v2 = tmp_path / "v2"

    emulator.control.clear_transcript()
    code, output = djdeploy(emulator, "rollback", "--tenant", TENANT)
    assert code == 1
    assert output.splitlines() == [
        f"error: revision {first} does not know 1 migration(s) the database has applied: "
        f"blog.0002_tags: unapply them first (`djdeploy manage --tenant {TENANT} -- migrate "
        f"blog <the last migration {first} knows>`), or add --force"
    ]
    assert not [e for e in emulator.control.transcript() if e["method"] == "PATCH"]
    assert traffic(emulator)[0]["type"] == "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"

    emulator.control.clear_transcript()
    code, output = djdeploy(emulator, "rollback", "--tenant", TENANT, "--force")
    assert code == 0, output
    traffic_doc = normalise(emulator.control.transcript())
    traffic_doc["reads"] = sorted(
        {re.sub(r"migrate-[a-z0-9]+\.json", "migrate-{id}.json", r) for r in traffic_doc["reads"]}
    )
    assert_golden(GOLDEN / "rollback.json", traffic_doc)
    assert f"pinned to {first} by rollback: it has all the traffic (was {second})" in output
    assert (
        "--force: the database keeps migrations this revision does not know: blog.0002_tags"
        in output
    )
    assert traffic(emulator) == [
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": first, "percent": 100}
    ]
    assert service(emulator)["annotations"][PIN_ANNOTATION] == first
    assert revisions(emulator)[-2:] == [first, second]  # the newer one is kept, and no new one

    # again: already done, nothing written
    emulator.control.clear_transcript()
    code, output = djdeploy(emulator, "rollback", "--tenant", TENANT, "--force")
    assert code == 0, output
    assert f"nothing to do: already pinned to {first} by rollback" in output
    assert not [e for e in emulator.control.transcript() if e["method"] == "PATCH"]

    # a management command runs the pinned revision's container
    code, output = djdeploy(emulator, "manage", "--tenant", TENANT, "--json", "--", "check")
    assert code == 0, output
    assert json.loads(output)["revision"] == first

    # plan and status show the pin; up keeps it (a new revision gets no traffic)
    code, output = djdeploy(emulator, "plan", "--tenant", TENANT, "--source", str(v2))
    assert code == 0, output
    assert f"pinned to {first} by rollback" in output
    doc = status_json(emulator)
    assert (doc["pinned_revision"], doc["ready_revision"]) == (first, second)
    code, output = djdeploy(emulator, "status", "--tenant", TENANT)
    assert code == 0 and f"pinned revision: {first}" in output, output
    step = next(s for s in doc["steps"] if s["step"] == "service")
    assert step["info"]["pinned"] == first
    assert (
        f"pinned to {first} by rollback (`djdeploy rollback --undo` moves traffic to "
        in (step["reason"])
    )
    v3 = tmp_path / "v3"
    shutil.copytree(v2, v3)
    (v3 / "VERSION").write_text("3\n")
    code, output = djdeploy(emulator, "up", "--tenant", TENANT, "--source", str(v3))
    assert code == 0, output
    third = revisions(emulator)[-1]
    assert third not in (first, second)
    assert traffic(emulator)[0]["revision"] == first
    assert service(emulator)["annotations"][PIN_ANNOTATION] == first

    # rolling forward is explicit
    code, output = djdeploy(emulator, "rollback", "--tenant", TENANT, "--undo")
    assert code == 0, output
    assert f"unpinned: all traffic to the latest revision {third} (was {first})" in output
    assert traffic(emulator) == [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]
    assert PIN_ANNOTATION not in (service(emulator).get("annotations") or {})
    code, output = djdeploy(emulator, "plan", "--tenant", TENANT, "--source", str(v3))
    assert code == 0 and "pinned" not in output, output


@pytest.mark.slow
def test_rollback_to_a_named_revision_that_knows_every_migration(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    _, second = two_deployments(emulator, tmp_path)
    code, output = djdeploy(emulator, "rollback", "--tenant", TENANT, "--to", "nosuch", "--json")
    assert code == 1
    assert output.splitlines() == [
        f"error: revision nosuch is not a revision of service {SERVICE}: choose one of "
        + ", ".join(reversed(revisions(emulator)))  # newest first
    ]
    code, output = djdeploy(emulator, "rollback", "--tenant", TENANT, "--to", second, "--json")
    assert code == 0, output
    doc = json.loads(output)
    assert doc == {
        "service": SERVICE,
        "revision": second,
        "previous": second,
        "pinned": True,
        "changed": True,
        "forced_past": [],
        "unchecked": "",
    }


@pytest.mark.slow
def test_kill_9_mid_rollback_then_rollback_again_converges(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    first, second = two_deployments(emulator, tmp_path)
    unblock = block(emulator, "run.service.deploy")
    emulator.control.clear_transcript()
    holder = Run(emulator, tmp_path, "rollback", "--tenant", TENANT, "--force")
    until(
        lambda: holds_lease(emulator, holder) and sent(emulator, "PATCH", f"/services/{SERVICE}"),
        "the rollback's write",
    )
    holder.kill()
    unblock()
    code, output = djdeploy(emulator, "rollback", "--tenant", TENANT, "--force")
    assert code == 0, output
    assert "took over the lease on tenant demo: `djdeploy rollback`" in output
    assert f"already pinned to {first} by rollback" in output
    assert traffic(emulator)[0]["revision"] == first
    assert revisions(emulator)[-2:] == [first, second]
    assert djdeploy(emulator, "status", "--tenant", TENANT)[0] == 0


def test_no_record_is_refused_and_the_refusal_names_at_most_five() -> None:
    empty = Migrations(lambda eid: None)
    with pytest.raises(RollbackRefused, match="cannot tell which migrations the database"):
        check_migrations(empty, revision="r1", image="img:1")
    applied = {"blog": [f"{i:04d}_m" for i in range(1, 9)]}
    known = {"blog": ["0001_m"]}
    records = {"e2": {"known": applied, "applied": applied}, "e1": {"known": known}}
    migrations = Migrations(
        records.get,
        executions=[
            {"name": "e2", "template": {"containers": [{"image": "img:2"}]}},
            {"name": "e1", "template": {"containers": [{"image": "img:1"}]}},
        ],
    )
    unknown = check_migrations(migrations, revision="r1", image="img:1")
    assert unknown == tuple(f"blog.{i:04d}_m" for i in range(2, 9))
    message = str(refusal(unknown, revision="r1", tenant=TENANT))
    assert "blog.0002_m, blog.0003_m, blog.0004_m, blog.0005_m, blog.0006_m and 2 more" in message
    with pytest.raises(RollbackRefused, match="no migrate record for its image img:3"):
        check_migrations(migrations, revision="r3", image="img:3")


def test_the_pin_is_one_write_that_keeps_other_annotations() -> None:
    live = {
        "name": "s",
        "etag": "e1",
        "annotations": {"team": "web"},
        "traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}],
    }
    pinned = pin_body(live, "s-00001-abc")
    assert pinned["etag"] == "e1"  # a concurrent change fails the write
    assert pinned["annotations"] == {"team": "web", PIN_ANNOTATION: "s-00001-abc"}
    assert pinned["traffic"] == [
        {
            "type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
            "revision": "s-00001-abc",
            "percent": 100,
        }
    ]
    assert pin_body(pinned, None)["annotations"] == {"team": "web"}


def test_undo_with_to_is_one_line_and_no_api_call() -> None:
    with pytest.raises(api.ConfigError, match="--undo moves traffic to the latest revision"):
        api.rollback(Config(tenant=TENANT, project=PROJECT), undo=True, to="x")


def test_an_empty_to_is_one_line_and_no_api_call() -> None:
    """`--to "$REV"` with REV unset: refused, not "revision  is not a revision" after reads."""
    with pytest.raises(api.ConfigError, match="--to is empty: name a revision"):
        api.rollback(Config(tenant=TENANT, project=PROJECT), to="")


@pytest.mark.slow
def test_rollback_after_a_failed_deploy_skips_the_failed_revision(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """The latest deploy failed (its revision never served): the latest ready revision keeps
    serving, and a rollback goes to the ready one before it; --to the failed one is refused."""
    first, second = two_deployments(emulator, tmp_path)
    v3 = tmp_path / "v3"
    shutil.copytree(tmp_path / "v2", v3)
    (v3 / "VERSION").write_text("3\n")
    emulator.control.fail("revision", SERVICE, "Container failed to start.")
    code, output = djdeploy(emulator, "up", "--tenant", TENANT, "--source", str(v3))
    assert code == 1, output
    record(emulator, V2)  # v3's migrate ran (and knew what v2 knew)
    failed = revisions(emulator)[-1]
    code, output = djdeploy(emulator, "rollback", "--tenant", TENANT, "--to", failed)
    assert code == 1
    assert f"error: revision {failed} is not ready (it never served)" in output
    code, output = djdeploy(emulator, "rollback", "--tenant", TENANT, "--force")
    assert code == 0, output
    assert f"pinned to {first} by rollback: it has all the traffic (was {second})" in output
    assert traffic(emulator)[0]["revision"] == first


@pytest.mark.slow
def test_a_lost_answer_to_the_pin_is_retried_and_found_applied(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """The write lands, its answer is lost; the retry's etag is stale (409 ABORTED): the
    rollback reads the service, finds its own pin, and succeeds."""
    first, _ = two_deployments(emulator, tmp_path)
    emulator.control.add_fault(method="PATCH", path=f"/services/{SERVICE}$", action="drop", times=1)
    code, output = djdeploy(emulator, "rollback", "--tenant", TENANT, "--force")
    assert code == 0, output
    assert f"pinned to {first} by rollback" in output
    patches = [
        e["status"]
        for e in emulator.control.transcript()
        if e["method"] == "PATCH" and e["path"].endswith(f"/services/{SERVICE}")
    ]
    assert patches[-1] == 409, patches
    assert traffic(emulator)[0]["revision"] == first


@pytest.mark.slow
def test_a_revision_whose_password_a_rotation_disabled_is_refused_at_once(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """Its instances could not start (the version is disabled, and the database user's password
    changed): one line and no traffic change, not a wait on a service that never settles."""
    _, second = two_deployments(emulator, tmp_path)
    rotate = ["secrets", "rotate", "--tenant", TENANT, "--secret", "db-password"]
    code, output = djdeploy(emulator, *rotate, "--source", str(tmp_path / "v2"))
    assert code == 0, output
    before = traffic(emulator)
    code, output = djdeploy(emulator, "rollback", "--tenant", TENANT)
    assert code == 1
    assert output.splitlines() == [
        f"error: revision {second} reads version 1 of secret {TENANT}-django-db-password, which "
        "is DISABLED (a `djdeploy secrets rotate` disables the database password's older "
        "versions): it cannot start; roll back to a revision deployed since, or choose one with "
        "--to"
    ]
    assert traffic(emulator) == before


@pytest.mark.slow
def test_a_rotation_is_refused_while_a_rollback_pins_the_service(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """The pinned revision serves and reads the current versions: a rotation would change the
    database password under it (and disable what it reads) while the new revision gets no
    traffic. Refused in one line, nothing written; after --undo it rotates."""
    first, _ = two_deployments(emulator, tmp_path)
    code, output = djdeploy(emulator, "rollback", "--tenant", TENANT, "--force")
    assert code == 0, output
    emulator.emu.transcript.clear()
    rotate = ["secrets", "rotate", "--tenant", TENANT, "--secret", "db-password"]
    code, output = djdeploy(emulator, *rotate, "--source", str(tmp_path / "v2"))
    assert code == 1
    assert output.splitlines() == [
        f"error: service {SERVICE} is pinned to {first} by `djdeploy rollback`, and that "
        "revision would keep the traffic while reading the secret versions the rotation "
        f"retires: run `djdeploy rollback --tenant {TENANT} --undo` first, then rotate"
    ]
    assert [e for e in emulator.emu.transcript.entries() if e["method"] != "GET"] == []
    assert djdeploy(emulator, "rollback", "--tenant", TENANT, "--undo")[0] == 0
    code, output = djdeploy(emulator, *rotate, "--source", str(tmp_path / "v2"))
    assert code == 0, output


def test_only_numbered_versions_of_the_projects_own_secrets_are_checked() -> None:
    env = [
        {"name": "A", "valueSource": {"secretKeyRef": {"secret": "s-db", "version": "1"}}},
        {"name": "B", "valueSource": {"secretKeyRef": {"secret": "s-key", "version": "latest"}}},
        {
            "name": "C",
            "valueSource": {"secretKeyRef": {"secret": "projects/9/secrets/x", "version": "2"}},
        },
        {"name": "D", "value": "plain"},
    ]
    pinned = pinned_secrets({"containers": [{"env": env}]})
    assert pinned == [("s-db", "1")]
    assert unreadable_secret(pinned, lambda s: {"1": "ENABLED"}, revision="r") is None
    refused = unreadable_secret(pinned, lambda s: {"2": "ENABLED"}, revision="r")
    assert refused is not None and "version 1 of secret s-db, which is DESTROYED" in str(refused)
