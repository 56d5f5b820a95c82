"""[ci] in the configuration: loaded from the file and DJDEPLOY_CI_*, refused in one line when
the repository is not OWNER/REPO or the branch is empty, and the steps it adds: the deployer
account, its roles, and the trigger last of all (so destroy deletes it first)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.config import CiConfig, Config, load_config
from deployer.engine import order
from deployer.errors import ConfigError
from deployer.steps import build_steps
from deployer.steps.ci import (
    DEPLOYER_ROLES,
    LOG_WRITER,
    MONITORING_ROLE,
    REDIS_ROLE,
    SCHEDULER_ROLE,
    CiTrigger,
)
from deployer.steps.iam import IamDeployer
from deployer.steps.service_accounts import ServiceAccounts


def make(**kwargs: object) -> Config:
    return Config("demo", project="my-proj-123", **kwargs)  # type: ignore[arg-type]


def test_loaded_from_the_file_and_the_environment(tmp_path: Path) -> None:
    (tmp_path / "djdeploy.toml").write_text('[ci]\ngithub = "acme/site"\n')
    config = load_config(tenant="demo", cwd=tmp_path, environ={}, flags={"project": "p-12345"})
    assert config.ci == CiConfig("acme/site", branch="main")
    config = load_config(
        tenant="demo",
        cwd=tmp_path,
        environ={"DJDEPLOY_CI_BRANCH": "release/2"},
        flags={"project": "p-12345"},
    )
    assert config.ci == CiConfig("acme/site", branch="release/2")
    assert (
        load_config(
            tenant="demo", cwd=Path("/nonexistent"), environ={}, flags={"project": "p-12345"}
        ).ci
        is None
    )


@pytest.mark.parametrize(
    ("ci", "message"),
    [
        (
            {"github": "acme"},
            'ci.github "acme" is invalid: give the GitHub repository as OWNER/REPO',
        ),
        ({"github": "a/b/c"}, 'ci.github "a/b/c" is invalid'),
        ({"github": "acme/site", "branch": ""}, 'ci.branch "" is invalid: give the branch'),
        ({"github": "acme/site", "branch": "a..b"}, 'ci.branch "a..b" is invalid'),
        ({"branch": "main"}, "ci is invalid: it needs github"),
        ({"github": "acme/site", "repo": "x"}, 'unknown key "ci.repo"'),
    ],
)
def test_bad_values_are_refused(ci: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        make(ci=ci)


def test_without_ci_one_retiring_step() -> None:
    names = [s.name for s in build_steps(make())]
    assert "ci-retired" in names and "ci" not in names and "iam-deployer" not in names
    assert "deployer" not in ServiceAccounts(make()).roles


def test_ci_adds_the_account_its_roles_and_the_trigger_early_but_destroys_it_first() -> None:
    config = make(
        ci={"github": "acme/site"}, cron=[{"name": "n", "schedule": "0 3 * * *", "command": "x"}]
    )
    steps = build_steps(config)
    names = [s.name for s in steps]
    assert "ci-retired" not in names
    trigger = steps[-1]
    # up makes it once its account exists (an unconnected repository fails at once)...
    assert isinstance(trigger, CiTrigger) and trigger.needs == ("service-accounts",)
    # ...and destroy, walking the order backwards, deletes it first
    assert set(trigger.deleted_before) == set(names[:-1])
    assert order(steps)[-1].name == "ci"
    assert ServiceAccounts(config).email("deployer") == (
        "demo-django-deploy@my-proj-123.iam.gserviceaccount.com"
    )
    [iam] = [s for s in steps if isinstance(s, IamDeployer)]
    [target] = iam.targets()
    assert set(target.wanted) == {*DEPLOYER_ROLES, SCHEDULER_ROLE, LOG_WRITER}
    assert set(target.unwanted) == {MONITORING_ROLE, REDIS_ROLE}  # revoked if ever granted
    # a role goes once the retiring steps that use it on push are done
    assert set(iam.needs) == {
        "service-accounts",
        "worker-retired",
        "redis-retired",
        "monitoring-retired",
    }
