"""What plan, up and destroy print: changed leaves with old -> new, every skipped step and what
it waited for, progress lines whose columns fit the longest step name, each kept resource once
with its own reason."""

from __future__ import annotations

import pytest

from deployer.emulator.testing import EmulatorHandle
from deployer.render import leaves
from tests.test_scenarios import TENANT, djdeploy, up


def test_leaves_name_each_changed_field_path() -> None:
    old = {"containers": [{"resources": {"limits": {"memory": "512Mi", "cpu": "1"}}}], "x": 1}
    new = {"containers": [{"resources": {"limits": {"memory": "1Gi", "cpu": "1"}}}], "x": 1}
    assert list(leaves("template", old, new)) == [
        ("template.containers[0].resources.limits.memory", "512Mi", "1Gi")
    ]
    assert list(leaves("env", [1], [1, 2])) == [("env", [1], [1, 2])]  # a list that grew
    assert list(leaves("", {"a": 1}, {"b": 2})) == [("a", 1, None), ("b", None, 2)]


def test_leaves_name_the_env_var_added_or_removed() -> None:
    """Not the two whole env lists, cut short to the same first variable on both sides."""
    foo, bar = {"name": "FOO", "value": "1"}, {"name": "BAR", "value": "2"}
    redis = {"name": "REDIS_URL", "valueSource": {"secretKeyRef": {"secret": "r", "version": "1"}}}
    assert list(leaves("env", [bar, foo, redis], [bar, foo])) == [("env[REDIS_URL]", redis, None)]
    assert list(leaves("env", [], [foo])) == [("env[FOO]", None, foo)]
    renamed = {"name": "BAZ", "value": "1"}
    assert list(leaves("env", [bar, foo], [bar, renamed])) == [
        ("env[FOO]", foo, None),
        ("env[BAZ]", None, renamed),
    ]
    changed = {"name": "FOO", "value": "3"}  # the same names: by position, as before
    assert list(leaves("env", [bar, foo], [bar, changed])) == [("env[1].value", "1", "3")]


@pytest.mark.slow  # a whole up
def test_plan_shows_the_one_changed_leaf(
    emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert up(emulator)[0] == 0
    monkeypatch.setenv("DJDEPLOY_SERVICE_MEMORY", "1Gi")
    code, output = djdeploy(emulator, "plan", "--tenant", TENANT)
    assert code == 2, output
    changed = [line.split() for line in output.splitlines() if "->" in line]
    memory = [parts for parts in changed if parts[0].endswith("limits.memory")]
    # the service's; the jobs take a new memory at their next run (docs/steps-run.md)
    assert [parts[0] for parts in memory] == ["template.containers[0].resources.limits.memory"], (
        output
    )
    assert all(parts[1:] == ["512Mi", "->", "1Gi"] for parts in memory), output
    assert not any("[{" in " ".join(parts) for parts in changed), output  # no whole lists


def test_a_failed_up_names_each_skipped_step_and_what_it_waited_for(
    emulator: EmulatorHandle,
) -> None:
    emulator.control.fail("sql.operation", "demo-django-pg", "it broke on purpose")
    code, output = up(emulator)
    assert code == 1
    lines = output.splitlines()
    assert sum(line.startswith("failed ") for line in lines) == 1, output
    assert "failed sql-instance: " in output
    assert "not run sql-database: waits for sql-instance, which failed" in lines
    assert "not run sql-user: waits for sql-database, which did not run either" in lines
    assert "not run service: waits for migrate, which did not run either" in lines

    # the progress lines: the state column starts after the longest step name, on every line
    phases = ("observe", "apply", "wait", "done", "failed", "skipped")
    progress = [line for line in lines if len(line.split()) > 1 and line.split()[1] in phases]
    assert any(line.startswith("monitoring-retired ") for line in progress), output
    columns = {line.index(line.split()[1], len(line.split()[0])) for line in progress}
    assert columns == {len("monitoring-retired") + 1}, output


@pytest.mark.slow
def test_destroy_names_the_shared_staging_bucket_once_as_shared(emulator: EmulatorHandle) -> None:
    assert up(emulator)[0] == 0
    code, output = djdeploy(emulator, "destroy", "--tenant", TENANT)
    assert code == 0, output
    summary = [line for line in output.splitlines() if ": kept" in line]
    sources = [line for line in summary if "djdeploy-sources" in line]
    assert sources == [
        "bucket acme-prod-djdeploy-sources: kept: shared by every tenant of the project"
    ]
    assert not any("--delete-data" in line for line in sources)
    assert all("run with --delete-data to delete" not in line for line in output.splitlines())
