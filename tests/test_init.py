"""`djdeploy init`: the djdeploy.toml a project's directory needs (source = "."), written
once, never over a config, with the values checked; no API call (no emulator involved)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from deployer.cli import app
from deployer.config import load_config


def init(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, ["init", *args], catch_exceptions=False)
    assert "Traceback" not in result.output
    return result.exit_code, [line for line in result.output.splitlines() if line.strip()]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "manage.py").write_text(
        'import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")\n'
    )
    (tmp_path / "mysite").mkdir()
    (tmp_path / "mysite" / "settings.py").write_text("")
    (tmp_path / "requirements.txt").write_text("Django>=4.2\n")
    return tmp_path


def test_init_writes_a_config_that_deploys_the_project(project: Path) -> None:
    code, lines = init("--tenant", "demo", "--project", "acme-prod", "--region", "us-central1")
    assert code == 0
    assert lines[0] == f"wrote {project / 'djdeploy.toml'}: djdeploy now deploys the Django " + (
        f"project in {project}"
    )
    assert (
        lines[-1]
        == "next: `djdeploy up --emulator` to try it locally, `djdeploy up` on Google Cloud"
    )
    assert len(lines) == 2  # a project the build takes: no "before up" line
    config = load_config(tenant=None, cwd=project, environ={}, flags={})
    assert (config.tenant, config.project, config.region) == ("demo", "acme-prod", "us-central1")
    assert config.source == project


def test_init_without_a_tenant_leaves_it_to_the_flag(project: Path) -> None:
    code, lines = init()
    assert code == 0
    assert lines[-1].startswith("next: `djdeploy up --tenant demo --emulator` to try it locally")
    assert "NAME" not in lines[-1]  # copied as printed, it runs
    config = load_config(tenant="demo", cwd=project, environ={}, flags={}, emulator=True)
    assert config.source == project


def test_init_says_what_the_build_would_refuse(project: Path) -> None:
    (project / "requirements.txt").unlink()
    code, lines = init("--tenant", "demo")
    assert code == 0
    assert lines[1].startswith(f"before up: {project} has no requirements.txt")


@pytest.mark.parametrize(
    ("existing", "text", "named"),
    [
        ("djdeploy.toml", 'tenant = "demo"\n', "djdeploy.toml exists"),
        ("pyproject.toml", '[tool.djdeploy]\ntenant = "demo"\n', "[tool.djdeploy] in"),
    ],
)
def test_init_never_writes_over_or_beside_a_config(
    project: Path, existing: str, text: str, named: str
) -> None:
    (project / existing).write_text(text)
    code, lines = init("--tenant", "demo")
    assert code == 1
    assert len(lines) == 1 and named in lines[0] and "nothing written" in lines[0]
    assert (project / existing).read_text() == text
    assert sorted(p.name for p in project.glob("*.toml")) == [existing]


def test_init_refuses_a_directory_without_a_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, lines = init("--tenant", "demo")
    assert code == 1
    assert lines == [
        f"error: no manage.py in {tmp_path} (nor in {tmp_path / 'src'}): run `djdeploy init` in "
        "your Django project's directory (the bundled sample needs no config: `djdeploy up` "
        "deploys it from a directory without one)"
    ]
    assert list(tmp_path.iterdir()) == []


def test_init_refuses_a_bad_value_and_writes_nothing(project: Path) -> None:
    code, lines = init("--tenant", "Demo")
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith('error: tenant "Demo" is invalid')
    assert not (project / "djdeploy.toml").exists()
