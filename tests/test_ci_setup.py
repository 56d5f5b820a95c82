"""`djdeploy ci setup` / `ci remove` against the emulator with the real clients: the deployer
account, its roles and the Cloud Build trigger, created once, then unchanged, updated when they
differ; the unconnected repository explained in one line; a trigger that is not ours refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.api_core.future.polling import DEFAULT_POLLING
from google.cloud.devtools import cloudbuild_v1 as cb

from deployer import __version__, api, ci
from deployer.config import load_config
from deployer.emulator import serviceusage
from deployer.emulator.testing import gapic_options
from deployer.errors import DeployError, NotOurs
from tests.contract import check_transcript
from tests.test_scenarios import djdeploy

PROJECT = "ci-proj"
REGION = "europe-west1"
REPO = "acme/site"
EMAIL = f"djdeploy-deployer@{PROJECT}.iam.gserviceaccount.com"


@pytest.fixture
def emulator(emulator: Any) -> Any:
    for s in ci.SETUP_APIS:
        serviceusage.set_enabled(emulator.emu, PROJECT, s)
    return emulator


def config(tenant: str = "demo") -> Any:
    return load_config(
        tenant=tenant, cwd=Path("/nonexistent"), environ={}, flags={"project": PROJECT}
    )


def setup(emulator: Any, branch: str = "main", tenant: str = "demo") -> list[ci.Done]:
    target = api.Target(endpoint=emulator.url)
    return api.ci_setup(config(tenant), repository=REPO, branch=branch, target=target)


def actions(done: list[ci.Done]) -> list[str]:
    return [d.action for d in done]


def trigger(emulator: Any, name: str = "djdeploy-demo") -> Any:
    client = cb.CloudBuildClient(**gapic_options(emulator.url))
    return client.get_build_trigger(
        name=f"projects/{PROJECT}/locations/{REGION}/triggers/{name}", project_id=PROJECT
    )


def test_an_unconnected_repository_is_explained_in_one_line(emulator: Any) -> None:
    with pytest.raises(DeployError) as caught:
        setup(emulator)
    message = str(caught.value)
    assert message == (
        f"{REPO} is not connected to Cloud Build in project {PROJECT}: connect it once in the "
        f"console (https://console.cloud.google.com/cloud-build/triggers;region={REGION}/connect"
        f"?project={PROJECT}), then run this again"
    )
    # the account and its roles were made before: the next run after connecting only adds
    # the trigger
    emulator.control.connect_github(PROJECT, REPO)
    assert actions(setup(emulator)) == ["unchanged", "unchanged", "created"]


def test_setup_creates_then_leaves_alone_then_updates(emulator: Any) -> None:
    emulator.control.connect_github(PROJECT, REPO)
    assert actions(setup(emulator)) == ["created", "updated", "created"]
    found = trigger(emulator)
    assert found.service_account == f"projects/{PROJECT}/serviceAccounts/{EMAIL}"
    assert list(found.tags) == ["djdeploy", "djdeploy-tenant-demo"]
    assert found.github.owner == "acme" and found.github.name == "site"
    assert found.github.push.branch == "^main$"
    step = found.build.steps[0]
    assert step.name == ci.BUILD_IMAGE and step.entrypoint == "bash"
    assert list(step.args) == [
        "-c",
        f"pip install --quiet djdeploy=={__version__} && "
        f"djdeploy up --tenant demo --project {PROJECT} --region {REGION}",
    ]
    projects = emulator.discovery("cloudresourcemanager", "v3").projects()
    bindings = projects.getIamPolicy(resource=f"projects/{PROJECT}", body={}).execute()["bindings"]
    held = {b["role"] for b in bindings if f"serviceAccount:{EMAIL}" in b["members"]}
    assert held == {*ci.DEPLOYER_ROLES, ci.LOG_WRITER}

    again = setup(emulator)
    assert actions(again) == ["unchanged", "unchanged", "unchanged"]
    assert again[2].reason == "exists and matches"

    moved = setup(emulator, branch="release")
    assert actions(moved) == ["unchanged", "unchanged", "updated"]
    assert moved[2].reason == "description, github differed"
    assert trigger(emulator).github.push.branch == "^release$"
    assert trigger(emulator).id == found.id
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_remove_deletes_the_trigger_and_keeps_the_account(emulator: Any) -> None:
    emulator.control.connect_github(PROJECT, REPO)
    setup(emulator)
    target = api.Target(endpoint=emulator.url)
    assert actions(api.ci_remove(config(), target=target)) == ["deleted"]
    assert actions(api.ci_remove(config(), target=target)) == ["unchanged"]
    iam = emulator.discovery("iam", "v1").projects().serviceAccounts()
    assert iam.get(name=f"projects/{PROJECT}/serviceAccounts/{EMAIL}").execute()["email"] == EMAIL


def test_a_trigger_that_is_not_ours_is_refused(emulator: Any) -> None:
    emulator.control.connect_github(PROJECT, REPO)
    body = ci.trigger_body(
        ci.Pipeline(tenant="demo", project=PROJECT, region=REGION, repository=REPO),
        version=__version__,
    )
    body |= {"tags": ["theirs"], "serviceAccount": ""}
    client = cb.CloudBuildClient(**gapic_options(emulator.url))
    client.create_build_trigger(
        parent=f"projects/{PROJECT}/locations/{REGION}",
        project_id=PROJECT,
        trigger=cb.BuildTrigger.from_json(json.dumps(body)),
    )
    with pytest.raises(NotOurs):
        setup(emulator)
    with pytest.raises(NotOurs):
        api.ci_remove(config(), target=api.Target(endpoint=emulator.url))


def test_the_cli_says_what_it_did(emulator: Any) -> None:
    emulator.control.connect_github(PROJECT, REPO)
    code, output = djdeploy(
        emulator, "ci", "setup", "--tenant", "demo", "--project", PROJECT, "--github", REPO
    )
    assert code == 0, output
    assert output.splitlines() == [
        f"created: service account {EMAIL}: the identity the trigger's builds deploy as",
        f"updated: {len(ci.DEPLOYER_ROLES) + 1} project roles of {EMAIL}: granted",
        f"created: trigger djdeploy-demo ({REPO} main -> tenant demo): deploys on push",
    ]
    code, output = djdeploy(emulator, "ci", "setup", "--github", "nope", "--project", PROJECT)
    assert code == 1
    assert output == "error: --github 'nope': give the GitHub repository as OWNER/REPO\n"


def test_apis_off_are_refused_before_any_write(emulator: Any) -> None:
    cfg = load_config(
        tenant="demo", cwd=Path("/nonexistent"), environ={}, flags={"project": "ci-off"}
    )
    with pytest.raises(DeployError) as caught:
        api.ci_setup(cfg, repository=REPO, target=api.Target(endpoint=emulator.url))
    assert str(caught.value) == (
        "cloudbuild.googleapis.com, cloudresourcemanager.googleapis.com, iam.googleapis.com not "
        "enabled in project ci-off: run `djdeploy up --tenant demo` first (it enables them)"
    )
    sent = [(e["method"], e["path"]) for e in emulator.emu.transcript.entries()]
    assert sent and all(method == "GET" for method, _ in sent), sent


def test_the_trigger_runs_and_every_trigger_route_answers_the_client(emulator: Any) -> None:
    """What `ci setup` made runs (triggers:run): a build of its inline config, as the deployer
    account, on the trigger's branch; each trigger call in both forms the client sends (the
    regional path when it has no project_id, the project path with ?parent= / ?name= when it
    has), validated against the discovery document."""
    emulator.control.connect_github(PROJECT, REPO)
    setup(emulator)
    client = cb.CloudBuildClient(**gapic_options(emulator.url))
    parent = f"projects/{PROJECT}/locations/{REGION}"
    name = f"{parent}/triggers/djdeploy-demo"
    found = trigger(emulator)
    poll = DEFAULT_POLLING.with_delay(initial=0.01, maximum=0.05).with_timeout(30)

    # run, regional form: no source, so the branch the trigger's ^main$ names
    op = client.run_build_trigger(request={"name": name})
    assert op.metadata.build.build_trigger_id == found.id
    built = op.result(polling=poll)
    assert built.status == cb.Build.Status.SUCCESS
    assert built.build_trigger_id == found.id
    assert built.service_account == found.service_account
    assert list(built.steps[0].args) == list(found.build.steps[0].args)
    assert dict(built.substitutions) == {
        "TRIGGER_NAME": "djdeploy-demo",
        "REPO_NAME": "site",
        "REPO_FULL_NAME": REPO,
        "BRANCH_NAME": "main",
        "REF_NAME": "main",
    }
    # run, project form (the source in the body, the location in ?name=): a given commit
    op = client.run_build_trigger(
        request={
            "project_id": PROJECT,
            "trigger_id": found.id,
            "name": name,
            "source": {"commit_sha": "0123456789abcdef"},
        }
    )
    assert op.result(polling=poll).substitutions["SHORT_SHA"] == "0123456"

    # list: both forms
    regional = client.list_build_triggers(request={"parent": parent})
    assert [t.name for t in regional] == ["djdeploy-demo"]
    by_project = client.list_build_triggers(request={"project_id": PROJECT, "parent": parent})
    assert [t.id for t in by_project] == [found.id]

    # update and create, regional form (the trigger's resourceName; the parent)
    found.description = "changed by hand"
    client.update_build_trigger(request={"trigger": found})
    assert trigger(emulator).description == "changed by hand"
    other = cb.BuildTrigger(found)
    other.name, other.id, other.resource_name = "by-pattern", "", ""
    other.github.push.branch = "^release-.*$"
    made = client.create_build_trigger(request={"parent": parent, "trigger": other})
    # a trigger on a pattern of branches runs only for a branch given
    with pytest.raises(gexc.BadRequest, match=r"give source\.branchName"):
        client.run_build_trigger(request={"name": f"{parent}/triggers/{made.id}"})

    # delete: both forms
    client.delete_build_trigger(request={"name": f"{parent}/triggers/{made.id}"})
    client.delete_build_trigger(
        request={"project_id": PROJECT, "trigger_id": found.id, "name": name}
    )
    assert list(client.list_build_triggers(request={"parent": parent})) == []
    assert check_transcript(emulator.emu.transcript.entries()) == []
