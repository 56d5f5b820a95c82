"""`djdeploy ci setup` against the emulator with the real clients: [ci]'s steps alone (the
deployer account, its roles, the Cloud Build trigger), created once, then unchanged, updated
when they differ; the unconnected repository explained in one line; a trigger that is not ours
refused; the flags only confirm [ci]; every trigger route answers the client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.api_core.future.polling import DEFAULT_POLLING
from google.cloud.devtools import cloudbuild_v1 as cb
from typer.testing import CliRunner

from deployer import api
from deployer.cli import app
from deployer.config import Config
from deployer.emulator.testing import gapic_options
from deployer.engine import RunResult
from deployer.steps import ci
from tests.contract import check_transcript
from tests.test_scenarios import writes_but_the_lease

PROJECT = "acme-prod"
REGION = "europe-west1"
REPO = "acme/site"
EMAIL = f"demo-django-deploy@{PROJECT}.iam.gserviceaccount.com"
CONNECT = (
    f"{REPO} is not connected to Cloud Build in project {PROJECT}: connect it once in the "
    f"console (https://console.cloud.google.com/cloud-build/triggers;region={REGION}/connect"
    f"?project={PROJECT}), then run up again"
)


def config(branch: str = "main") -> Config:
    return Config("demo", project=PROJECT, ci={"github": REPO, "branch": branch})


def setup(emulator: Any, branch: str = "main") -> RunResult:
    target = api.Target(endpoint=emulator.url, time_scale=0.001)
    return api.ci_setup(config(branch), target=target)


def actions(result: RunResult) -> dict[str, str]:
    return {r.step: (r.first.action.value if r.first else r.error) for r in result.results}


def trigger(emulator: Any, name: str = "djdeploy-demo") -> Any:
    client = cb.CloudBuildClient(**gapic_options(emulator.url))
    return client.get_build_trigger(
        name=f"projects/{PROJECT}/locations/{REGION}/triggers/{name}", project_id=PROJECT
    )


def test_an_unconnected_repository_is_explained_in_one_line(emulator: Any) -> None:
    # no read tells beforehand: plan names what the create needs
    target = api.Target(endpoint=emulator.url, time_scale=0.001)
    [pending] = [c for c in api.snapshot(config(), target=target).changes if c.step == "ci"]
    assert f"needs {REPO} connected to Cloud Build, once, in the console" in pending.reason
    result = setup(emulator)
    assert not result.ok
    assert [r.error for r in result.results if r.error] == [f"ci: {CONNECT}"]
    # the account and its roles were made before: the run after connecting only adds the trigger
    emulator.control.connect_github(PROJECT, REPO)
    again = setup(emulator)
    assert again.ok
    assert actions(again)["ci"] == "create" and actions(again)["iam-deployer"] == "noop"


def test_an_account_cloud_build_does_not_see_yet_is_waited_for(emulator: Any) -> None:
    """The trigger goes out right after its account is made: Cloud Build's refusal of an
    account it does not see yet is ridden out, not reported."""
    emulator.control.connect_github(PROJECT, REPO)
    emulator.control.add_fault(
        method="POST",
        path="/triggers$",
        code=400,
        status="INVALID_ARGUMENT",
        message=f"generic::invalid_argument: service account {EMAIL} does not exist",
        times=2,
    )
    result = setup(emulator)
    assert result.ok, result.results
    posts = [e["status"] for e in emulator.control.transcript() if e["path"].endswith("/triggers")]
    assert posts == [400, 400, 200]
    assert trigger(emulator).service_account.endswith(EMAIL)


def test_setup_creates_then_leaves_alone_then_updates(emulator: Any) -> None:
    emulator.control.connect_github(PROJECT, REPO)
    first = setup(emulator)
    assert first.ok, first.results
    assert [s for s, a in actions(first).items() if a == "noop"] == []  # a fresh project
    found = trigger(emulator)
    assert found.service_account == f"projects/{PROJECT}/serviceAccounts/{EMAIL}"
    assert list(found.tags) == ["djdeploy", "djdeploy-tenant-demo"]
    assert found.github.owner == "acme" and found.github.name == "site"
    assert found.github.push.branch == "^main$"
    step = found.build.steps[0]
    assert step.name == ci.BUILD_IMAGE and step.entrypoint == "bash"
    assert list(step.args) == [
        "-c",
        f"pip install --quiet djdeploy=={ci.installed_version()} && "
        f"djdeploy up --tenant demo --project {PROJECT} --region {REGION}",
    ]
    projects = emulator.discovery("cloudresourcemanager", "v3").projects()
    bindings = projects.getIamPolicy(resource=f"projects/{PROJECT}", body={}).execute()["bindings"]
    held = {b["role"] for b in bindings if f"serviceAccount:{EMAIL}" in b["members"]}
    assert held == set(ci.deployer_roles(config()))

    emulator.control.clear_transcript()
    again = setup(emulator)
    assert set(actions(again).values()) == {"noop"}
    assert writes_but_the_lease(emulator.control.transcript()) == []

    moved = setup(emulator, branch="release")
    assert actions(moved)["ci"] == "update"
    paths = [f.path for r in moved.results if r.step == "ci" and r.first for f in r.first.fields]
    assert paths == ["description", "github.push.branch"]
    assert trigger(emulator).github.push.branch == "^release$"
    assert trigger(emulator).id == found.id
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_a_trigger_that_is_not_ours_is_refused(emulator: Any) -> None:
    emulator.control.connect_github(PROJECT, REPO)
    assert setup(emulator).ok  # the account the trigger below names exists
    client = cb.CloudBuildClient(**gapic_options(emulator.url))
    name = f"projects/{PROJECT}/locations/{REGION}/triggers/djdeploy-demo"
    client.delete_build_trigger(request={"name": name})
    body = ci.trigger_body(config(), version="0") | {"tags": ["theirs"]}
    client.create_build_trigger(
        parent=f"projects/{PROJECT}/locations/{REGION}",
        project_id=PROJECT,
        trigger=cb.BuildTrigger.from_json(json.dumps(body)),
    )
    result = setup(emulator)
    assert [r.error for r in result.results if r.error] == [
        "ci: Cloud Build trigger djdeploy-demo exists without the tag 'djdeploy': not djdeploy's; "
        "delete it or remove [ci]"
    ]
    assert list(trigger(emulator).tags) == ["theirs"]


def cli(emulator: Any, tmp_path: Path, toml: str, *args: str) -> tuple[int, str]:
    (tmp_path / "djdeploy.toml").write_text(toml)
    env = {"GOOGLE_CLOUD_PROJECT": PROJECT, "DJDEPLOY_CONFIG": str(tmp_path / "djdeploy.toml")}
    result = CliRunner().invoke(
        app,
        [
            "--endpoint",
            emulator.url,
            "--time-scale",
            "0.001",
            "ci",
            "setup",
            "--tenant",
            "demo",
            *args,
        ],
        env=env,
        catch_exceptions=False,
    )
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("toml", "args", "message"),
    [
        (
            "",
            ["--github", REPO],
            'error: no [ci] table: add [ci] github = "acme/site", branch = "main" to '
            "djdeploy.toml (the trigger's build runs up with the repository's config, so [ci] "
            "belongs there)",
        ),
        (
            "",
            ["--github", "nope"],
            "error: --github 'nope': give the GitHub repository as OWNER/REPO",
        ),
        (
            f'[ci]\ngithub = "{REPO}"\n',
            ["--branch", "release"],
            "error: --branch release: [ci] says 'main'; change [ci] in djdeploy.toml (the "
            "trigger's build runs up with it), or leave the flag out",
        ),
        (
            '[ci]\ngithub = "acme"\n',
            [],
            'error: ci.github "acme" is invalid: give the GitHub repository as OWNER/REPO, e.g. '
            '"acme/site" (from ci.github in {path})',
        ),
        (
            f'[ci]\ngithub = "{REPO}"\nbranch = ""\n',
            [],
            'error: ci.branch "" is invalid: give the branch a push deploys from, e.g. "main" '
            "(from ci.branch in {path})",
        ),
    ],
)
def test_bad_input_is_one_line_before_any_call(
    emulator: Any, tmp_path: Path, toml: str, args: list[str], message: str
) -> None:
    code, output = cli(emulator, tmp_path, toml, *args)
    assert code == 1
    assert output.splitlines() == [message.format(path=tmp_path / "djdeploy.toml")]
    assert emulator.control.transcript() == []


def test_the_cli_makes_the_trigger_as_up_does(emulator: Any, tmp_path: Path) -> None:
    emulator.control.connect_github(PROJECT, REPO)
    toml = f'[ci]\ngithub = "{REPO}"\nbranch = "main"\n'
    code, output = cli(emulator, tmp_path, toml, "--github", REPO, "--json")
    assert code == 0, output
    steps = {s["step"]: s for s in json.loads(output)["steps"]}
    assert set(steps) == {"apis", "sources-bucket", "service-accounts", "iam-deployer", "ci"}
    assert steps["ci"]["last"]["action"] == "noop"


def test_the_trigger_runs_and_every_trigger_route_answers_the_client(emulator: Any) -> None:
    """What [ci] made runs (triggers:run): a build of its inline config, as the deployer
    account, on the trigger's branch; each trigger call in both forms the client sends (the
    regional path when it has no project_id, the project path with ?parent= / ?name= when it
    has), validated against the discovery document."""
    emulator.control.connect_github(PROJECT, REPO)
    assert setup(emulator).ok
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
