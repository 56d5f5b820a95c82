"""`djdeploy manage` against the emulator: a command as an execution of the manage job with the
serving revision's container, its logs, its exit status, --no-wait, --json, the commands
refused before any API call, and destroy deleting the job."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from deployer.emulator.testing import EmulatorHandle
from deployer.errors import ConfigError
from deployer.lease import supersedes
from deployer.management import check_args
from tests.test_lease_scenarios import Run, block
from tests.test_scenarios import GOLDEN, PROJECT, TENANT, assert_golden, djdeploy, normalise, up

MANAGE_JOB = f"{TENANT}-django-manage"


def state(emulator: EmulatorHandle, kind: str) -> list[dict[str, Any]]:
    return [v for _, v in emulator.emu.store.list(kind, "")]


def traffic(emulator: EmulatorHandle) -> dict[str, Any]:
    """The golden transcript's shape; entries:list (a POST that reads) is polled as often as
    the execution takes, so it is listed as a read."""
    doc = normalise(emulator.control.transcript())
    polls = [w for w in doc["writes"] if w.endswith("/entries:list")]
    for w in polls:
        del doc["writes"][w]
    doc["reads"] = sorted({*doc["reads"], *polls})
    return doc


def manage_executions(emulator: EmulatorHandle) -> list[dict[str, Any]]:
    found = [e for e in state(emulator, "run.execution") if e["job"] == MANAGE_JOB]
    return sorted(found, key=lambda e: e["createTime"])


@pytest.mark.slow
def test_manage_runs_with_the_services_container_and_exits_with_its_status(
    emulator: EmulatorHandle,
) -> None:
    code, output = up(emulator)
    assert code == 0, output

    emulator.control.clear_transcript()
    code, output = djdeploy(emulator, "manage", "--tenant", TENANT, "--", "showmigrations", "-l")
    assert code == 0, output
    assert_golden(GOLDEN / "manage.json", traffic(emulator))
    (execution,) = manage_executions(emulator)
    eid = execution["name"].rsplit("/", 1)[-1]
    assert execution["template"]["containers"][0]["args"] == ["manage", "showmigrations", "-l"]
    assert "Container called exit(0)." in output and eid in output
    assert f"execution {eid} succeeded" in output

    # the job is the serving revision's container: image, env (pinned secrets), volumes
    (svc,) = state(emulator, "run.service")
    (job,) = [j for j in state(emulator, "run.job") if j["name"].endswith("/" + MANAGE_JOB)]
    served, task = svc["template"]["containers"][0], job["template"]["template"]
    assert task["containers"][0]["image"] == served["image"]
    assert task["containers"][0]["env"] == served["env"]
    assert task["volumes"] == svc["template"]["volumes"]
    assert task["serviceAccount"] == svc["template"]["serviceAccount"]
    revision = svc["latestReadyRevision"].rsplit("/", 1)[-1]
    assert job["template"]["labels"]["djdeploy-revision"] == revision

    # a second command does not touch the job; a failed one is exit 1 with one error line
    emulator.control.clear_transcript()
    emulator.control.fail("execution", MANAGE_JOB, "Task {execution}-task0 failed: boom")
    code, output = djdeploy(emulator, "manage", "--tenant", TENANT, "--", "clearsessions")
    assert code == 1
    eid = manage_executions(emulator)[-1]["name"].rsplit("/", 1)[-1]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert errors == [f"error: execution {eid} failed: Task {eid}-task0 failed: boom"], output
    paths = [f"{e['method']} {e['path']}" for e in emulator.control.transcript()]
    assert not [p for p in paths if p.startswith("PATCH") and MANAGE_JOB in p], paths

    # --no-wait: the execution's name, at once
    code, output = djdeploy(
        emulator, "manage", "--tenant", TENANT, "--no-wait", "--", "check", "--deploy"
    )
    assert code == 0, output
    eid = manage_executions(emulator)[-1]["name"].rsplit("/", 1)[-1]
    assert output.splitlines()[0] == eid

    code, output = djdeploy(emulator, "manage", "--tenant", TENANT, "--json", "--", "check")
    assert code == 0, output
    doc = json.loads(output)
    assert doc["state"] == "succeeded" and doc["job"] == MANAGE_JOB
    assert doc["revision"] == revision

    code, output = djdeploy(emulator, "logs", "--tenant", TENANT, "--job", "manage")
    assert code == 0 and "Container called exit(0)." in output, output

    code, output = djdeploy(emulator, "destroy", "--tenant", TENANT)
    assert code == 0, output
    assert not [j for j in state(emulator, "run.job") if j["name"].endswith("/" + MANAGE_JOB)]


@pytest.mark.slow
def test_an_egress_added_to_the_job_by_hand_is_removed(emulator: EmulatorHandle) -> None:
    """vpcAccess is compared whole (container_env.spec_changes), as on the service: one the
    serving revision does not have is drift the next command removes."""
    assert up(emulator)[0] == 0
    assert djdeploy(emulator, "manage", "--tenant", TENANT, "--", "check")[0] == 0
    jobs = emulator.discovery("run", "v2").projects().locations().jobs()
    name = f"projects/{PROJECT}/locations/europe-west1/jobs/{MANAGE_JOB}"
    job = jobs.get(name=name).execute()
    job["template"]["template"]["vpcAccess"] = {
        "egress": "ALL_TRAFFIC",
        "networkInterfaces": [{"network": "corp", "subnetwork": "corp-eu"}],
    }
    jobs.patch(name=name, body=job).execute()
    assert "vpcAccess" in jobs.get(name=name).execute()["template"]["template"]

    code, output = djdeploy(emulator, "manage", "--tenant", TENANT, "--", "check")
    assert code == 0, output
    assert "vpcAccess" not in jobs.get(name=name).execute()["template"]["template"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ([], "no management command given: put it after --"),
        (["shell"], "shell needs a terminal: run code with"),
        (["dbshell"], "dbshell needs a terminal: connect with `gcloud sql connect"),
        (["createsuperuser"], "createsuperuser asks for a password on a terminal: add --noinput"),
        (["createsuperuser", "--username", "x"], "createsuperuser asks for a password"),
        (["runserver", "0:8000"], "runserver is a development server"),
        (["changepassword", "admin"], "changepassword asks for the password on a terminal"),
    ],
)
def test_commands_that_need_a_terminal_are_one_line_and_no_api_call(
    emulator: EmulatorHandle, args: list[str], named: str
) -> None:
    code, output = djdeploy(emulator, "manage", "--tenant", TENANT, "--", *args)
    assert code == 1
    assert output.count("\n") == 1 and named in output and "Traceback" not in output, output
    assert emulator.emu.transcript.entries() == []


@pytest.mark.parametrize(
    "args",
    [
        ["shell", "-c", "print(1)"],
        ["shell", "--command=print(1)"],
        ["createsuperuser", "--noinput", "--username", "ops", "--email", "ops@example.com"],
        ["migrate", "blog", "0001"],
        ["showmigrations"],
    ],
)
def test_commands_without_a_terminal_pass(args: list[str]) -> None:
    check_args(args, tenant=TENANT)


def test_nothing_deployed_is_one_line(emulator: EmulatorHandle) -> None:
    code, output = djdeploy(emulator, "manage", "--tenant", TENANT, "--", "check")
    assert code == 1
    assert output.splitlines() == [
        f"error: service {TENANT}-django does not exist: run `djdeploy up --tenant {TENANT}` "
        "first (a management command runs with the service's image and settings)"
    ]
    assert not [e for e in emulator.emu.transcript.entries() if e["method"] != "GET"]


def test_check_args_refuses_before_anything() -> None:
    with pytest.raises(ConfigError, match="dbshell needs a terminal"):
        check_args(["dbshell"], tenant=PROJECT)


def test_manage_neither_stops_nor_is_stopped_by_a_run_it_waited_for() -> None:
    """A command runs on whatever is deployed; up, destroy and rollback stop each other."""
    assert not supersedes("up", "manage") and not supersedes("manage", "up")
    assert not supersedes("manage", "manage") and not supersedes("up", "up")
    assert supersedes("up", "destroy") and supersedes("destroy", "up")
    assert supersedes("up", "rollback") and supersedes("rollback", "up")


@pytest.mark.slow
def test_ctrl_c_while_a_command_runs_leaves_it_running_and_says_so(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """Running the command again would run it twice: Ctrl-C names the execution instead of
    the usual "run the same command again"."""
    assert up(emulator)[0] == 0
    unblock = block(emulator, "run.execution")
    run = Run(emulator, tmp_path, "manage", "--tenant", TENANT, "--", "clearsessions")
    run.wait_for("started (revision")
    run.proc.send_signal(signal.SIGINT)
    code, output = run.finish()
    unblock()
    assert code == 130, output
    (execution,) = manage_executions(emulator)
    eid = execution["name"].rsplit("/", 1)[-1]
    assert f"interrupted: execution {eid} keeps running" in output
    assert "run the same command again" not in output
