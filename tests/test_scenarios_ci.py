"""Deploy on push ([ci]) end to end through the CLI against the emulator: plan shows the trigger
and the deployer account's steps, up makes them last, status names the repository and the newest
build, a second up writes nothing and reads each thing once, destroy deletes the trigger before
anything else; kill -9 mid-step and a removed [ci] converge; golden transcripts."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from google.api_core.future.polling import DEFAULT_POLLING
from google.cloud.devtools import cloudbuild_v1 as cb

from deployer.emulator.testing import EmulatorHandle, gapic_options
from tests import test_scenarios as scenarios
from tests.contract import check_transcript
from tests.test_scenarios import (
    GOLDEN,
    PROJECT,
    TENANT,
    assert_golden,
    config_env,
    is_lease_renewal,
    normalise,
    writes_but_the_lease,
)

pytestmark = pytest.mark.slow  # CLI scenarios: each runs whole deployments

REGION = "europe-west1"
REPO = "acme/site"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
TRIGGER = f"{PARENT}/triggers/djdeploy-{TENANT}"
EMAIL = f"{TENANT}-django-deploy@{PROJECT}.iam.gserviceaccount.com"
CI_TOML = f'[ci]\ngithub = "{REPO}"\nbranch = "main"\n'
CRON_TOML = '[[cron]]\nname = "nightly"\nschedule = "0 3 * * *"\ncommand = ["clearsessions"]\n'
SCHEDULER_ROLE = "roles/cloudscheduler.admin"


@pytest.fixture
def config_file(tmp_path: Path, emulator: EmulatorHandle) -> Path:
    emulator.control.connect_github(PROJECT, REPO)
    path = tmp_path / "djdeploy.toml"
    path.write_text(CI_TOML)
    return path


def djdeploy(emulator: EmulatorHandle, config_file: Path, *args: str) -> tuple[int, str]:
    code, output = scenarios.djdeploy(emulator, *args, config=config_file)
    return code, output


def client(emulator: EmulatorHandle) -> Any:
    return cb.CloudBuildClient(**gapic_options(emulator.url))


def triggers(emulator: EmulatorHandle) -> list[Any]:
    return list(client(emulator).list_build_triggers(request={"parent": PARENT}))


def account(emulator: EmulatorHandle) -> dict[str, Any] | None:
    accounts = emulator.discovery("iam", "v1").projects().serviceAccounts()
    listed = accounts.list(name=f"projects/{PROJECT}").execute().get("accounts", [])
    return next((a for a in listed if a["email"] == EMAIL), None)


def roles(emulator: EmulatorHandle) -> set[str]:
    projects = emulator.discovery("cloudresourcemanager", "v3").projects()
    policy = projects.getIamPolicy(resource=f"projects/{PROJECT}", body={}).execute()
    return {
        b["role"] for b in policy.get("bindings", []) if f"serviceAccount:{EMAIL}" in b["members"]
    }


def paths(emulator: EmulatorHandle, *methods: str) -> list[str]:
    """The paths of the transcript's requests of ``methods``, in order, the lease's left out."""
    return [
        e["path"]
        for e in emulator.control.transcript()
        if e["method"] in methods and "djdeploy-leases" not in e["path"]
    ]


def test_plan_up_status_noop_destroy(emulator: EmulatorHandle, config_file: Path) -> None:
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT, "--json")
    assert code == 2, output
    pending = {s["step"]: s["action"] for s in json.loads(output)["steps"]}
    assert pending["ci"] == "create" and pending["iam-deployer"] == "update"
    assert "ci-retired" not in pending

    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    [made] = triggers(emulator)
    assert made.github.push.branch == "^main$" and made.service_account.endswith(EMAIL)
    assert account(emulator) is not None and "roles/run.admin" in roles(emulator)

    code, output = djdeploy(emulator, config_file, "status", "--tenant", TENANT)
    assert code == 0, output
    assert f"deploy on push: {REPO} main (trigger djdeploy-{TENANT}); no build yet" in output
    poll = DEFAULT_POLLING.with_delay(initial=0.01, maximum=0.05).with_timeout(30)
    built = client(emulator).run_build_trigger(request={"name": TRIGGER}).result(polling=poll)
    code, output = djdeploy(emulator, config_file, "status", "--tenant", TENANT, "--json")
    ci = next(s for s in json.loads(output)["steps"] if s["step"] == "ci")
    assert ci["state"] == "ok" and ci["info"]["repository"] == REPO
    assert ci["info"]["last build"].startswith("SUCCESS ") and built.id in ci["info"]["last build"]

    # a no-op up, as the trigger's build runs it, and plan: no write, each thing read once,
    # and of the trigger only reads (the deployer account's roles allow them:
    # cloudbuild.builds.get and .list)
    for command in ("up", "plan"):
        emulator.control.clear_transcript()
        code, output = djdeploy(emulator, config_file, command, "--tenant", TENANT)
        assert code == 0, output
        transcript = [e for e in emulator.control.transcript() if not is_lease_renewal(e)]
        assert writes_but_the_lease(transcript) == []
        reads = Counter(f"{e['method']} {e['path']} {e.get('query')}" for e in transcript)
        assert [r for r, n in reads.items() if n > 1] == [], command
        assert {r.split()[0] for r in reads if "/triggers" in r} == {"GET"}
    assert "nothing to change" in output, output

    emulator.control.clear_transcript()
    code, output = djdeploy(emulator, config_file, "destroy", "--tenant", TENANT)
    assert code == 0, output
    deletes = paths(emulator, "DELETE")
    assert "/triggers/" in deletes[0], deletes  # first: no push deploys a half-destroyed tenant
    assert triggers(emulator) == [] and account(emulator) is None and roles(emulator) == set()
    assert check_transcript(emulator.control.transcript()) == []


def test_an_unconnected_repository_fails_up_beside_the_database_not_after_it(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """The trigger's create, the one call that tells, goes out once its account exists: its
    refusal is the run's own line even when the Cloud SQL instance (the long chain every later
    step waits for) fails; the rest of the graph goes on without it."""
    config_file = tmp_path / "djdeploy.toml"
    config_file.write_text(CI_TOML)
    emulator.control.fail("sql.operation", f"{TENANT}-django-pg/CREATE", "it broke on purpose")
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 1, output
    assert f"failed ci: {REPO} is not connected to Cloud Build in project {PROJECT}" in output
    assert "ci: waits for" not in output
    assert "failed sql-instance:" in output and "iam-deployer: waits for" in output
    posts = [e for e in emulator.control.transcript() if e["method"] == "POST"]
    assert [e["status"] for e in posts if "/triggers" in e["path"]] == [400]  # refused once
    # connected, the next up adds the trigger, whatever the database does
    emulator.control.connect_github(PROJECT, REPO)
    djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert [t.name for t in triggers(emulator)] == [f"djdeploy-{TENANT}"]


def test_removing_ci_deletes_the_trigger_then_the_account(
    emulator: EmulatorHandle, config_file: Path
) -> None:
    assert djdeploy(emulator, config_file, "up", "--tenant", TENANT)[0] == 0
    config_file.write_text("")
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT, "--json")
    assert code == 2, output
    [retiring] = [s for s in json.loads(output)["steps"] if s["action"] != "noop"]
    assert retiring["step"] == "ci-retired" and retiring["action"] == "delete"
    assert [f["path"] for f in retiring["fields"]] == [
        f"trigger djdeploy-{TENANT}",
        f"roles of {EMAIL}",
        f"service account {EMAIL}",
    ]
    # the account's delete fails once, where a kill -9 could land: the trigger is gone
    emulator.control.add_fault(
        method="DELETE", path="/serviceAccounts/", code=403, status="PERMISSION_DENIED", times=1
    )
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 1, output
    assert triggers(emulator) == [] and roles(emulator) == set() and account(emulator) is not None
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    assert account(emulator) is None
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT)
    assert code == 0 and "nothing to change" in output, output


def test_a_removed_feature_takes_its_role_away_after_its_retiring_step(
    emulator: EmulatorHandle, config_file: Path
) -> None:
    """[ci] with a [[cron]] entry grants the deployer account roles/cloudscheduler.admin;
    once the entry is gone, cron-retired deletes the schedules (with that role, when up runs
    on push) and then iam-deployer revokes it, leaving another member's binding of it."""
    config_file.write_text(CI_TOML + CRON_TOML)
    assert djdeploy(emulator, config_file, "up", "--tenant", TENANT)[0] == 0
    assert SCHEDULER_ROLE in roles(emulator)
    projects = emulator.discovery("cloudresourcemanager", "v3").projects()
    policy = projects.getIamPolicy(resource=f"projects/{PROJECT}", body={}).execute()
    policy["bindings"].append({"role": SCHEDULER_ROLE, "members": ["user:ops@example.com"]})
    projects.setIamPolicy(resource=f"projects/{PROJECT}", body={"policy": policy}).execute()

    config_file.write_text(CI_TOML)
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT, "--json")
    assert code == 2, output
    pending = {s["step"]: s for s in json.loads(output)["steps"] if s["action"] != "noop"}
    assert sorted(pending) == ["cron-retired", "iam-deployer"], output
    assert [(f["path"], f["new"]) for f in pending["iam-deployer"]["fields"]] == [
        (f"project:{SCHEDULER_ROLE}", None)
    ]
    emulator.control.clear_transcript()
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    writes = paths(emulator, "DELETE", "POST")
    revoked = writes.index(f"/v3/projects/{PROJECT}:setIamPolicy")
    assert revoked > max(i for i, p in enumerate(writes) if "serviceAccounts/" in p), writes
    assert SCHEDULER_ROLE not in roles(emulator) and "roles/run.admin" in roles(emulator)
    policy = projects.getIamPolicy(resource=f"projects/{PROJECT}", body={}).execute()
    kept = [b["members"] for b in policy["bindings"] if b["role"] == SCHEDULER_ROLE]
    assert kept == [["user:ops@example.com"]]
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT)
    assert code == 0 and "nothing to change" in output, output
    assert check_transcript(emulator.control.transcript()) == []


def test_a_destroy_cut_short_after_the_trigger_finishes(
    emulator: EmulatorHandle, config_file: Path
) -> None:
    assert djdeploy(emulator, config_file, "up", "--tenant", TENANT)[0] == 0
    emulator.control.add_fault(
        method="DELETE", path="/serviceAccounts/", code=403, status="PERMISSION_DENIED", times=1
    )
    code, output = djdeploy(emulator, config_file, "destroy", "--tenant", TENANT)
    assert code == 1, output
    assert triggers(emulator) == []  # deleted first
    code, output = djdeploy(emulator, config_file, "destroy", "--tenant", TENANT)
    assert code == 0, output
    assert account(emulator) is None and roles(emulator) == set()


def test_kill_9_after_the_trigger_was_created_then_up_adopts_it(
    emulator: EmulatorHandle, config_file: Path, tmp_path: Path
) -> None:
    """The create is applied but its answer lost (drop), and the retry held 30 s: a kill then
    leaves a trigger the killed run never saw; the next up finds it ours and leaves it."""
    emulator.control.add_fault(method="POST", path="/triggers$", action="drop", times=1)
    emulator.control.add_fault(
        method="POST", path="/triggers$", action="delay", seconds=30, times=1
    )
    cmd = [sys.executable, "-m", "deployer", "--endpoint", emulator.url, "--time-scale", "0.01"]
    proc = subprocess.Popen(
        [*cmd, "up", "--tenant", TENANT],
        env={**os.environ, **config_env(config_file)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 300
        # the emulator's own state: the Cloud Build API is not on when the run starts
        while (
            time.monotonic() < deadline
            and proc.poll() is None
            and not emulator.control.state("cloudbuild.trigger")["cloudbuild.trigger"]
        ):
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[0]
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    [made] = triggers(emulator)
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    assert [t.id for t in triggers(emulator)] == [made.id]


@pytest.mark.parametrize("scenario", ["up-ci", "destroy-ci"])
def test_golden_transcripts(emulator: EmulatorHandle, config_file: Path, scenario: str) -> None:
    """Only [ci]'s traffic (the trigger, its builds, the deployer account; the trigger's id,
    which the server assigns, as {id}): the rest, the project policy the account's roles are
    in among it, is the other goldens' traffic too, its count depending on timing."""
    assert djdeploy(emulator, config_file, "up", "--tenant", TENANT)[0] == 0
    if scenario == "destroy-ci":
        emulator.control.clear_transcript()
        assert djdeploy(emulator, config_file, "destroy", "--tenant", TENANT)[0] == 0

    def ours(e: dict[str, Any]) -> bool:
        seen = json.dumps([e["path"], e.get("query")])
        return "/triggers" in seen or "-deploy" in seen or "trigger_id" in seen

    entries = [
        {**e, "path": re.sub(r"/triggers/[0-9a-f-]{36}$", "/triggers/{id}", e["path"])}
        for e in emulator.control.transcript()
        if ours(e)
    ]
    assert_golden(GOLDEN / f"{scenario}.json", normalise(entries))
