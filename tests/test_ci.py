"""`djdeploy ci github-actions`: the workflow file (a golden text), its refusal to overwrite a
different file, --force, the repository taken from the origin remote, and the deployer roles
kept the same as docs/real-google-cloud.md's table."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deployer import __version__, ci
from deployer.cli import app
from deployer.config import load_config
from deployer.steps.ci import trigger_body
from tests.test_scenarios import GOLDEN, UPDATE_GOLDEN

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = Path(".github/workflows/djdeploy.yml")
ARGS = [
    "ci",
    "github-actions",
    "--tenant",
    "demo",
    "--project",
    "acme-prod",
    "--github",
    "acme/site",
]


def run(cwd: Path, *args: str) -> tuple[int, str]:
    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, list(args), env={}, catch_exceptions=False)
    finally:
        os.chdir(old)
    return result.exit_code, result.output


def test_the_workflow_file(tmp_path: Path) -> None:
    code, output = run(tmp_path, *ARGS, "--region", "us-central1")
    assert code == 0, output
    text = (tmp_path / WORKFLOW).read_text()
    golden = GOLDEN / "ci-github-actions.yml"
    normal = text.replace(f"djdeploy=={__version__}", "djdeploy==VERSION")
    if os.environ.get(UPDATE_GOLDEN):
        golden.write_text(normal)
    assert normal == golden.read_text(), f"workflow changed: {UPDATE_GOLDEN}=1 to accept"
    assert "id-token: write" in text and "contents: read" in text
    assert "  group: djdeploy-acme-prod-demo\n  cancel-in-progress: false" in text
    assert "djdeploy up --tenant demo --project acme-prod --region us-central1" in text
    assert "credentials_json" not in text  # keyless


def test_the_setup_commands_restrict_the_provider_to_the_repository_and_branch(
    tmp_path: Path,
) -> None:
    code, output = run(tmp_path, *ARGS, "--branch", "release")
    assert code == 0, output
    assert f"wrote {WORKFLOW}" in output
    assert "--attribute-condition=\"assertion.repository=='acme/site' && " in output
    assert "assertion.ref=='refs/heads/release'\"" in output
    assert "attribute.repository/acme/site" in output
    for role in ci.DEPLOYER_ROLES:
        assert role in output
    assert 'branches: ["release"]' in (tmp_path / WORKFLOW).read_text()


def test_a_different_file_is_kept_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / WORKFLOW
    target.parent.mkdir(parents=True)
    target.write_text("name: mine\n")
    code, output = run(tmp_path, *ARGS)
    assert code == 1
    assert output.strip() == f"error: {WORKFLOW} exists with other content: --force overwrites it"
    assert target.read_text() == "name: mine\n"

    code, output = run(tmp_path, *ARGS, "--force")
    assert code == 0, output
    assert target.read_text() == ci.workflow(
        ci.Pipeline(
            tenant="demo", project="acme-prod", region="europe-west1", repository="acme/site"
        ),
        version=__version__,
    )
    code, output = run(tmp_path, *ARGS)  # the same content again: nothing to refuse
    assert code == 0 and f"unchanged: {WORKFLOW}" in output


def test_the_repository_comes_from_the_origin_remote(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text(
        '[core]\n\tbare = false\n[remote "origin"]\n\turl = git@github.com:acme/shop.git\n'
        "\tfetch = +refs/heads/*:refs/remotes/origin/*\n"
    )
    code, output = run(
        tmp_path, "ci", "github-actions", "--tenant", "demo", "--project", "acme-prod"
    )
    assert code == 0, output
    assert "attribute.repository/acme/shop" in output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "error: --github OWNER/REPO: no GitHub origin remote here to take it from"),
        (["--github", "not a repo"], "error: --github 'not a repo': give the GitHub repository"),
        (["--github", "a/b", "--branch", "x..y"], "error: --branch 'x..y': give a branch name"),
        (["--github", "a/b", "--tenant", "Bad"], "error: "),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, extra: list[str], message: str) -> None:
    code, output = run(
        tmp_path, "ci", "github-actions", "--project", "acme-prod", "--tenant", "demo", *extra
    )
    assert code == 1
    assert output.startswith(message) and output.count("\n") == 1, output
    assert not (tmp_path / WORKFLOW).exists()


def test_the_roles_are_the_documented_ones() -> None:
    page = (REPO / "docs" / "real-google-cloud.md").read_text()
    section = page.split("## The roles the deploying identity needs")[1].split("\n## ")[0]
    documented = re.findall(r"^\| `(roles/[^`]+)`", section, re.M)
    assert sorted(documented) == sorted(ci.DEPLOYER_ROLES + ci.OPTIONAL_ROLES)


def test_the_configuration_adds_the_roles_it_needs(tmp_path: Path) -> None:
    (tmp_path / "djdeploy.toml").write_text(
        '[[cron]]\nname = "nightly"\nschedule = "0 3 * * *"\ncommand = ["clearsessions"]\n'
    )
    code, output = run(tmp_path, *ARGS)
    assert code == 0, output
    assert ci.SCHEDULER_ROLE in output and ci.MONITORING_ROLE not in output


def test_a_config_under_another_name_is_named_to_the_push_up(tmp_path: Path) -> None:
    """A push's `djdeploy up` runs in the repository's root, where it finds djdeploy.toml by
    itself; a deployment read from another file names it, from the root, or the push would
    deploy another configuration (or the bundled sample)."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "manage.py").write_text("")
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "prod.toml").write_text('source = ".."\n[ci]\ngithub = "acme/site"\n')
    code, output = run(tmp_path, *ARGS, "--config", "deploy/prod.toml")
    assert code == 0, output
    text = (tmp_path / WORKFLOW).read_text()
    assert "djdeploy up --tenant demo --project acme-prod --region" in text
    assert "--config deploy/prod.toml" in text

    (tmp_path / "djdeploy.toml").write_text('source = "."\n')
    assert ci.config_in_checkout(tmp_path / "djdeploy.toml") is None  # found by itself
    assert ci.config_in_checkout(tmp_path / "deploy" / "prod.toml") == "deploy/prod.toml"
    assert ci.config_in_checkout(None) is None

    config = load_config(
        tenant="demo",
        cwd=tmp_path,
        environ={},
        flags={"project": "acme-prod", "config": "deploy/prod.toml"},
    )
    (step,) = trigger_body(config, version="1")["build"]["steps"]
    assert step["args"][-1].endswith(
        "djdeploy up --tenant demo --project acme-prod --region europe-west1"
        " --config deploy/prod.toml"
    )
