"""The source preflight (deployer/preflight.py): what the image build and the container check,
refused before any API call, one line per problem naming the fix; and the same rules as the
container's discover.py on the layouts the container tests run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from djdeploy_container.djdeploy_runtime import discover
from typer.testing import CliRunner

from deployer import preflight
from deployer.archive import container_dir, default_source
from deployer.cli import app

DJANGO_ADMIN = Path(sys.executable).parent / "django-admin"
SETTINGS = 'INSTALLED_APPS = ["django.contrib.staticfiles"]\n'


def tutorial(where: Path) -> Path:
    """The official tutorial's project: startproject mysite, an app polls, no requirements."""
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(DJANGO_ADMIN), "startproject", "mysite", str(where)], check=True)
    (where / "polls").mkdir()
    (where / "polls" / "__init__.py").write_text("")
    return where


def project(
    where: Path,
    *,
    settings: str = SETTINGS,
    requirements: str | None = "Django>=4.2\n",
    module: str = "site1.settings",
) -> Path:
    package = where / "site1"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(settings)
    (where / "manage.py").write_text(
        f'import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", "{module}")\n'
    )
    if requirements is not None:
        (where / "requirements.txt").write_text(requirements)
    return where


def test_bundled_sample_passes() -> None:
    assert preflight.problems(default_source()) == []


def test_tutorial_refused_in_one_line_naming_the_fix(tmp_path: Path) -> None:
    found = preflight.problems(tutorial(tmp_path / "mysite"))
    assert len(found) == 1
    assert "has no requirements.txt (nor a pyproject.toml)" in found[0]
    assert f"create {tmp_path / 'mysite' / 'requirements.txt'}" in found[0]
    (tmp_path / "mysite" / "requirements.txt").write_text("Django>=4.2,<6\n")
    assert preflight.problems(tmp_path / "mysite") == []


def test_cli_plan_and_up_refuse_before_any_api_call(tmp_path: Path) -> None:
    """The endpoint has nothing behind it: reaching it would be another error."""
    source = tutorial(tmp_path / "mysite")
    args = ["--tenant", "demo", "--project", "acme-prod", "--source", str(source)]
    for command in ("plan", "up"):
        result = CliRunner().invoke(app, [command, *args, "--endpoint", "http://127.0.0.1:9"])
        assert result.exit_code == 1, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in result.output, result.output
        assert lines[0].startswith("error: ") and "requirements.txt" in lines[0]
        assert "nothing answers" not in result.output


def test_cli_with_emulator_refuses_before_starting_it(tmp_path: Path) -> None:
    """--emulator: the refusal comes before the background emulator starts (no daemon, not
    even its state directory)."""
    source = tutorial(tmp_path / "mysite")
    state = tmp_path / "state"
    for command in (["plan"], ["up"], ["secrets", "rotate"]):
        args = [*command, "--tenant", "demo", "--source", str(source)]
        result = CliRunner().invoke(app, [*args, "--emulator", "--state-dir", str(state)])
        assert result.exit_code == 1, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.output
        assert "requirements.txt" in lines[0]
        assert not state.exists(), result.output


def test_src_layout(tmp_path: Path) -> None:
    """manage.py and the settings in src/, the requirements at the root (the container's
    test_src_layout)."""
    project(tmp_path / "src", requirements=None)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["Django"]\n')
    assert preflight.problems(tmp_path) == []


def test_no_manage_py(tmp_path: Path) -> None:
    (found,) = preflight.problems(tmp_path)
    assert found.startswith(f"no manage.py in {tmp_path} (nor in {tmp_path / 'src'})")


@pytest.mark.parametrize(
    ("requirements", "ok"),
    [
        ("django==5.0\n", True),
        ("Django[argon2] >= 4.2 ; python_version >= '3.10'\n", True),
        ("# pinned\nrequests\n", False),
        ("-e .\n", True),  # cannot tell: taken on trust
        ("git+https://github.com/django/django.git\n", True),
        ("-r base.txt\n", True),
        ("Django==4.2.7 \\\n    --hash=sha256:abc \\\n    --hash=sha256:def\n", True),
        ("requests==2.0 \\\n    --hash=sha256:abc\n", False),
        ("-c constraints.txt\ngunicorn\n", False),
    ],
)
def test_requirements_list_django(tmp_path: Path, requirements: str, ok: bool) -> None:
    project(tmp_path, requirements=requirements)
    (tmp_path / "base.txt").write_text("Django>=4.2\n")
    found = preflight.problems(tmp_path)
    assert found == ([] if ok else [found[0]])
    if not ok:
        assert "requirements.txt does not list Django" in found[0], found
        assert 'add a line such as "Django>=4.2,<6"' in found[0]


def test_pyproject_rules(tmp_path: Path) -> None:
    project(tmp_path, requirements=None)
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\n')
    (found,) = preflight.problems(tmp_path)
    assert found.startswith(f"{pyproject} lists no [project].dependencies")
    pyproject.write_text("[project\n")
    (found,) = preflight.problems(tmp_path)
    assert found.startswith(f"cannot read the dependencies of {pyproject}")
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["wagtail"]\n')
    (found,) = preflight.problems(tmp_path)
    assert "[project].dependencies does not list Django" in found


@pytest.mark.parametrize(
    ("spec", "ok"),
    [
        (">=3.10", True),
        (">=3.11", True),
        (">=3.12", False),
        ("~=3.10", True),
        ("~=3.12.1", False),
        ("==3.11.*", True),
        ("!=3.11.*", False),
        (">=3.8,<3.11", False),
        ("<=3.11", False),  # PEP 440: 3.11.9 > 3.11
        ("===3.11.4", True),  # not read: taken on trust
    ],
)
def test_requires_python(tmp_path: Path, spec: str, ok: bool) -> None:
    project(tmp_path)
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "x"\nrequires-python = "{spec}"\n')
    found = preflight.problems(tmp_path)
    assert (found == []) is ok, found
    if not ok:
        assert "excludes Python 3.11, the image's (python:3.11-slim)" in found[0]


def test_image_python_is_the_dockerfiles() -> None:
    text = (container_dir() / "Dockerfile").read_text()
    major, minor = preflight.image_python()
    assert f"ARG PYTHON_IMAGE=python:{major}.{minor}-slim" in text


def test_settings_module_not_named(tmp_path: Path) -> None:
    project(tmp_path)
    (tmp_path / "manage.py").write_text("print('hi')\n")
    (found,) = preflight.problems(tmp_path)
    assert "does not name the settings module" in found and "set settings_module" in found
    assert preflight.problems(tmp_path, settings_module="site1.settings") == []


def test_settings_module_missing(tmp_path: Path) -> None:
    project(tmp_path, module="site2.settings")
    (found,) = preflight.problems(tmp_path)
    assert found.startswith(f'settings module "site2.settings" is not in {tmp_path}')
    assert found.endswith("DJANGO_SETTINGS_MODULE")
    (found,) = preflight.problems(tmp_path, settings_module="site1.prod")
    assert found.endswith("fix settings_module")
    (found,) = preflight.problems(tmp_path, settings_module="djdeploy_runtime.settings")
    assert "that is djdeploy's runtime" in found


def test_staticfiles(tmp_path: Path) -> None:
    project(tmp_path, settings='INSTALLED_APPS = ["django.contrib.contenttypes"]\n')
    (found,) = preflight.problems(tmp_path)
    assert 'add "django.contrib.staticfiles" to INSTALLED_APPS' in found
    # split settings: the package's other files count
    (tmp_path / "site1" / "base.py").write_text(SETTINGS)
    assert preflight.problems(tmp_path) == []
    # INSTALLED_APPS set nowhere in the project's settings: nothing concluded
    (tmp_path / "site1" / "base.py").unlink()
    (tmp_path / "site1" / "settings.py").write_text("from corp.settings import *\n")
    assert preflight.problems(tmp_path) == []


def test_problems_all_reported(tmp_path: Path) -> None:
    project(tmp_path, requirements="requests\n", module="nowhere.settings")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nrequires-python = ">=3.13"\n')
    assert len(preflight.problems(tmp_path)) == 3


# -- the container's rules, on the container tests' layouts ----------------------------------


def _container_finds(home: Path) -> tuple[Path, str]:
    saved = os.environ.pop("DJANGO_PROJECT_SETTINGS", None)
    try:
        return discover.project_dir(home), discover.find_settings_module(home)
    finally:
        if saved is not None:
            os.environ["DJANGO_PROJECT_SETTINGS"] = saved


def test_same_rules_as_the_container(tmp_path: Path) -> None:
    """tests/container/test_container_layouts.py's projects: the tutorial (with its
    requirements), a src layout, a project without auth; the container finds the project and
    settings the preflight checked."""
    tut = tutorial(tmp_path / "tut")
    (tut / "requirements.txt").write_text("Django\n")
    src = tmp_path / "srcl"
    shutil.copytree(default_source(), src / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (src / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["Django"]\n')
    for home, settings in ((tut, "mysite.settings"), (src, "djsample.settings")):
        assert preflight.problems(home) == []
        directory, name = _container_finds(home)
        assert name == settings
        assert (directory / Path(*name.split("."))).with_suffix(".py").is_file()
    noauth = project(tmp_path / "noauth", settings='INSTALLED_APPS = ["x"]\n')
    assert _container_finds(noauth)[1] == "site1.settings"
    (found,) = preflight.problems(noauth)  # the build's collectstatic would fail
    assert "django.contrib.staticfiles" in found
