"""A new user's first mistakes, through the CLI against the emulator (real clients): a tenant
that is not deployed (misspelt, or never deployed) is said so in one line by status, logs and
destroy, rather than shown as a table of missing steps, nothing, or "kept" resources that do
not exist; an empty log says so; a delete Google refuses fails at once with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from deployer.cli import SAMPLE_NOTE, app
from deployer.config import load_config
from deployer.emulator.testing import EmulatorHandle
from tests.contract import check_transcript

PROJECT = "acme-new"
TENANT = "demo"


def djdeploy(emulator: EmulatorHandle, *args: str) -> Result:
    return CliRunner().invoke(
        app,
        ["--endpoint", emulator.url, "--time-scale", "0.001", *args],
        env={"GOOGLE_CLOUD_PROJECT": PROJECT, "DJDEPLOY_TENANT": None},
        catch_exceptions=False,
    )


def one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def test_logs_of_an_unknown_tenant_say_the_service_does_not_exist(
    emulator: EmulatorHandle,
) -> None:
    result = djdeploy(emulator, "logs", "--tenant", "nosuch")
    assert result.exit_code == 1, result.output
    line = one_line(result.output)
    assert line.startswith("error: service nosuch-django does not exist in project acme-new")
    assert "`djdeploy status` lists the tenants" in line
    result = djdeploy(emulator, "logs", "--tenant", "nosuch", "--job", "migrate")
    assert result.exit_code == 1, result.output
    assert "job nosuch-django-migrate does not exist" in one_line(result.output)
    assert check_transcript(emulator.control.transcript()) == []


@pytest.mark.slow  # a whole up
def test_logs_with_no_matching_entry_say_so_on_stderr(emulator: EmulatorHandle) -> None:
    assert djdeploy(emulator, "up", "--tenant", TENANT).exit_code == 0
    result = djdeploy(emulator, "logs", "--tenant", TENANT, "--severity", "EMERGENCY", "--json")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # --json: stdout stays one entry per line
    assert one_line(result.stderr) == (
        f"no log entries of service {TENANT}-django (at EMERGENCY or worse)"
    )


def test_status_of_an_unknown_tenant_is_one_line_exit_1(emulator: EmulatorHandle) -> None:
    result = djdeploy(emulator, "status", "--tenant", "nosuch")
    assert result.exit_code == 1, result.output
    assert one_line(result.output) == (
        "error: no tenant nosuch is deployed in project acme-new: "
        "`djdeploy status` lists the tenants"
    )
    assert writes(emulator) == []


def test_status_lists_no_tenant_in_a_fresh_project(emulator: EmulatorHandle) -> None:
    """Where the unknown tenant's line sends the user: its APIs not enabled yet hold nothing."""
    result = djdeploy(emulator, "status")
    assert result.exit_code == 0, result.output
    assert one_line(result.output) == "no djdeploy tenants found in this project"


def test_status_of_a_first_up_cut_short_shows_what_it_made(emulator: EmulatorHandle) -> None:
    """An up that failed early (its instance's create failed) still shows its partial state."""
    emulator.control.fail("sql.operation", "demo-django-pg", "it broke on purpose")
    assert djdeploy(emulator, "up", "--tenant", TENANT).exit_code == 1
    result = djdeploy(emulator, "status", "--tenant", TENANT, "--json")
    assert result.exit_code == 0, result.output
    assert '"step": "service-accounts"' in result.stdout


def test_destroy_of_an_unknown_tenant_says_there_is_nothing_to_destroy(
    emulator: EmulatorHandle,
) -> None:
    result = djdeploy(emulator, "destroy", "--tenant", "nosuch")
    assert result.exit_code == 0, result.output
    assert one_line(result.stdout) == (
        "nothing to destroy: no tenant nosuch is deployed in project acme-new: "
        "`djdeploy status` lists the tenants"
    )
    assert "kept" not in result.stdout


@pytest.mark.slow  # a whole up
def test_destroy_keeps_and_names_only_what_exists(emulator: EmulatorHandle) -> None:
    assert djdeploy(emulator, "up", "--tenant", TENANT).exit_code == 0
    result = djdeploy(emulator, "destroy", "--tenant", TENANT)
    assert result.exit_code == 0, result.output
    kept = [line.split() for line in result.stdout.splitlines() if " keep " in line]
    assert any(
        words[:4] == ["sql-instance", f"{TENANT}-django-pg", "keep", "database"] for words in kept
    ), kept
    assert any(words[0] == "secrets" and "credentials;" in words for words in kept), kept
    # the data is kept: a second destroy finds it and says so again
    again = djdeploy(emulator, "destroy", "--tenant", TENANT)
    assert again.exit_code == 0 and "nothing to destroy" not in again.output, again.output


def writes(emulator: EmulatorHandle) -> list[str]:
    return [
        f"{e['method']} {e['path']}"
        for e in emulator.control.transcript()
        if e["method"] != "GET" and not e["path"].endswith(":getIamPolicy")
    ]


@pytest.mark.parametrize("layout", [".", "src"])
@pytest.mark.parametrize("file", ["djdeploy.toml", "pyproject.toml"])
def test_a_config_beside_manage_py_without_source_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str, file: str
) -> None:
    """Else the bundled sample is deployed in the project's place, from CI on every push."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / layout).mkdir(exist_ok=True)
    (tmp_path / layout / "manage.py").write_text("")
    table = "[tool.djdeploy]\n" if file == "pyproject.toml" else ""
    (tmp_path / file).write_text(f'{table}tenant = "demo"\n')
    result = CliRunner().invoke(app, ["--emulator", "plan"])
    assert result.exit_code == 1
    line = one_line(result.output)
    assert f"{tmp_path / file} sets no source" in line
    assert 'add source = "." to it' in line
    # given as a flag, or set in the file: the project itself
    load = {"tenant": None, "cwd": tmp_path, "environ": {}, "emulator": True}
    assert load_config(**load, flags={"source": "."}).source == tmp_path  # type: ignore[arg-type]
    (tmp_path / file).write_text(f'{table}tenant = "demo"\nsource = "."\n')
    assert load_config(**load, flags={}).source == tmp_path  # type: ignore[arg-type]


@pytest.mark.parametrize("layout", [".", "src"])
@pytest.mark.parametrize("command", ["up", "plan", "status", "destroy"])
def test_a_django_project_without_a_config_is_refused_before_any_call(
    emulator: EmulatorHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    layout: str,
    command: str,
) -> None:
    """`djdeploy up --tenant demo` in a project's directory would deploy the bundled sample in
    its place: refused, naming `djdeploy init` and --source; nothing reaches the API."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / layout).mkdir(exist_ok=True)
    (tmp_path / layout / "manage.py").write_text("")
    before = len(emulator.control.transcript())
    result = djdeploy(emulator, command, "--tenant", TENANT)
    assert result.exit_code == 1
    line = one_line(result.output)
    assert f"error: {tmp_path} holds a Django project (manage.py) but no djdeploy.toml" in line
    assert "run `djdeploy init`" in line and "or pass --source ." in line
    assert len(emulator.control.transcript()) == before
    # the project itself, once named
    load = {"tenant": TENANT, "cwd": tmp_path, "environ": {}, "emulator": True}
    assert load_config(**load, flags={"source": "."}).source == tmp_path  # type: ignore[arg-type]
    env = {"DJDEPLOY_SOURCE": "."}
    assert load_config(**load | {"environ": env}, flags={}).source == tmp_path  # type: ignore[arg-type]


def test_a_config_elsewhere_without_source_is_refused_in_a_django_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--config naming a file that sets no source, run from a project's directory."""
    project, elsewhere = tmp_path / "site", tmp_path / "deploy"
    project.mkdir()
    elsewhere.mkdir()
    (project / "manage.py").write_text("")
    (elsewhere / "prod.toml").write_text('tenant = "demo"\n')
    monkeypatch.chdir(project)
    result = CliRunner().invoke(app, ["--emulator", "plan", "--config", "../deploy/prod.toml"])
    assert result.exit_code == 1
    line = one_line(result.output)
    assert f"prod.toml sets no source, but the working directory {project} holds" in line
    assert "or pass --source ." in line


def test_the_sample_still_deploys_from_a_directory_without_manage_py(tmp_path: Path) -> None:
    """The README's first command, run in an empty directory (or the repository's root)."""
    load = {"tenant": TENANT, "environ": {}, "flags": {}, "emulator": True}
    assert load_config(cwd=tmp_path, **load).source is None  # type: ignore[arg-type]
    repo = Path(__file__).resolve().parents[1]
    assert load_config(cwd=repo, **load).source is None  # type: ignore[arg-type]


@pytest.mark.slow  # a whole up
def test_up_of_the_sample_says_so_last(emulator: EmulatorHandle, tmp_path: Path) -> None:
    """Run by mistake outside the user's project, `up` says what it deployed and how to deploy
    theirs; with a project (--source) it does not."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)  # no manage.py, no djdeploy.toml: the sample
        result = djdeploy(emulator, "up", "--tenant", TENANT)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == SAMPLE_NOTE
    assert "`djdeploy init` in its directory" in SAMPLE_NOTE
    sample = Path(__file__).resolve().parents[1] / "container" / "sample"
    again = djdeploy(emulator, "up", "--tenant", TENANT, "--source", str(sample))
    assert again.exit_code == 0, again.output
    assert SAMPLE_NOTE not in again.output


@pytest.mark.slow  # a whole up
def test_a_refused_delete_fails_its_step_at_once_with_googles_reason(
    emulator: EmulatorHandle,
) -> None:
    """Cloud SQL's database, user and instance, each delete refused once in turn: each destroy
    fails at the next one, naming it and Google's reason once; the next deletes it."""
    assert djdeploy(emulator, "up", "--tenant", TENANT).exit_code == 0
    instance = f"{TENANT}-django-pg"
    refusal = 'role "demo_django" cannot be dropped because some objects depend on it'
    for kind, match, step, what, reason in (
        (
            "sql.operation",
            f"{instance}/DELETE_DATABASE",
            "sql-user",  # which deletes the database before its user, who owns it
            f"database demo_django on instance {instance}",
            "in use",
        ),
        (
            "sql.operation",
            f"{instance}/DELETE_USER",
            "sql-user",
            f"user demo_django on instance {instance}",
            refusal,
        ),
        ("delete", f"/instances/{instance}", "sql-instance", f"instance {instance}", "in use"),
    ):
        emulator.control.fail(kind, match, reason)
        result = djdeploy(emulator, "destroy", "--tenant", TENANT, "--delete-data", "--yes")
        assert result.exit_code == 1, result.output
        error = [line for line in result.output.splitlines() if line.startswith("error: ")]
        assert error == [
            f"error: {step}: Cloud SQL did not delete {what}: {reason}; fix the cause and run "
            "destroy --delete-data again"
        ], result.output
    assert check_transcript(emulator.control.transcript()) == []
    # the cause gone, destroy finishes
    result = djdeploy(emulator, "destroy", "--tenant", TENANT, "--delete-data", "--yes")
    assert result.exit_code == 0, result.output
