"""A delete whose operation ends in error fails its step at once with Google's reason, as
Cloud SQL's does (the engine checks the deletes each step started: gcp/deletes.py): destroy,
then up's retiring steps, of a deployment with a [worker] and a Redis broker, each delete made
to fail once by the emulator's outcome rules (kind "delete"); the resource stays, and the next
run deletes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.emulator.testing import EmulatorHandle
from tests.contract import check_transcript
from tests.test_scenarios import TENANT
from tests.test_scenarios_redis import REDIS_TOML
from tests.test_scenarios_worker import djdeploy

pytestmark = pytest.mark.slow  # a CLI scenario: whole deployments

PREFIX = f"{TENANT}-django"
REASON = "the resource is in use by {what} (injected)"
#: (outcome match, the step, what the error names): one of each kind djdeploy deletes
FAILING = [
    (
        f"/workerPools/{PREFIX}-worker",
        "worker",
        f"Cloud Run did not delete worker pool {PREFIX}-worker",
    ),
    (f"/services/{PREFIX}", "service", f"Cloud Run did not delete service {PREFIX}"),
    (f"/jobs/{PREFIX}-migrate", "migrate", f"Cloud Run did not delete job {PREFIX}-migrate"),
    (
        f"/instances/{PREFIX}-redis",
        "redis",
        f"Memorystore for Redis did not delete instance {PREFIX}-redis",
    ),
    (
        f"/repositories/{PREFIX}",
        "registry",
        f"Artifact Registry did not delete repository {PREFIX}",
    ),
]


def errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error: ")]


def test_each_failed_delete_fails_destroy_at_once(emulator: EmulatorHandle, tmp_path: Path) -> None:
    config_file = tmp_path / "djdeploy.toml"
    config_file.write_text(REDIS_TOML)
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    for match, step, _ in FAILING:
        emulator.control.fail("delete", match, REASON.format(what=step))
    seen = []
    for _ in FAILING:  # each destroy stops at the next failing delete, which stays
        code, output = djdeploy(emulator, config_file, "destroy", "--tenant", TENANT)
        assert code == 1, output
        [error] = errors(output)
        seen.append(error)
    assert sorted(seen) == sorted(
        f"error: {step}: {what}: {REASON.format(what=step)}; fix the cause and run destroy again"
        for _, step, what in FAILING
    )
    code, output = djdeploy(emulator, config_file, "destroy", "--tenant", TENANT)
    assert code == 0, output
    assert check_transcript(emulator.control.transcript()) == []


def test_a_failed_delete_fails_a_retiring_step_at_once(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    config_file = tmp_path / "djdeploy.toml"
    config_file.write_text(REDIS_TOML)
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    config_file.write_text("")
    for match, step, _ in FAILING[:1] + FAILING[3:4]:
        emulator.control.fail("delete", match, REASON.format(what=step))
    # worker-retired first (redis-retired waits for it), then redis-retired: each at once
    for step, what in (
        ("worker-retired", f"Cloud Run did not delete worker pool {PREFIX}-worker"),
        ("redis-retired", f"Memorystore for Redis did not delete instance {PREFIX}-redis"),
    ):
        code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
        assert code == 1, output
        reason = REASON.format(what=step.removesuffix("-retired"))
        assert f"failed {step}: {what}: {reason}; fix the cause and run up again" in (
            output.splitlines()
        ), output
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT)
    assert code == 0 and "nothing to change" in output, output
    assert check_transcript(emulator.control.transcript()) == []
