"""container/install-requirements.sh, run as the image build runs it (from the project root, the
runtime under .djdeploy/), with a pip on PATH that records what it was asked to install."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from container_helpers import CONTAINER

FAKE_PIP = """#!{python}
import json, os, sys
with open(os.environ["PIP_LOG"], "a") as log:
    log.write(json.dumps({{"args": sys.argv[1:], "cwd": os.getcwd()}}) + "\\n")
"""


def install(project: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, list[dict]]:
    shutil.copytree(CONTAINER, project / ".djdeploy", ignore=shutil.ignore_patterns("sample"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pip = bin_dir / "pip"
    pip.write_text(FAKE_PIP.format(python=sys.executable))
    pip.chmod(pip.stat().st_mode | stat.S_IXUSR)
    (bin_dir / "python").symlink_to(sys.executable)
    log = tmp_path / "pip.log"
    result = subprocess.run(
        ["sh", ".djdeploy/install-requirements.sh", ".djdeploy/requirements.txt"],
        cwd=project,
        env={
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "PIP_LOG": str(log),
            "TMPDIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


def requirement_files(call: dict) -> list[Path]:
    args = call["args"]
    assert args[0] == "install"
    files = [Path(call["cwd"], args[i + 1]) for i, a in enumerate(args) if a == "-r"]
    assert len(files) * 2 == len(args) - 1, args
    return files


@pytest.fixture
def project(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    app.mkdir()
    return app


def test_requirements_read_in_place_so_nested_files_resolve(project: Path, tmp_path: Path) -> None:
    (project / "requirements").mkdir()
    (project / "requirements" / "base.txt").write_text("Django>=5,<6\n")
    (project / "constraints.txt").write_text("Django<5.2\n")
    (project / "requirements.txt").write_text("-r requirements/base.txt\n-c constraints.txt\n")
    result, calls = install(project, tmp_path)
    assert result.returncode == 0, result.stderr
    (call,) = calls  # one resolve: the runtime's requirements and the project's together
    runtime, project_file = requirement_files(call)
    assert runtime.resolve() == (project / ".djdeploy" / "requirements.txt").resolve()
    assert project_file.resolve() == (project / "requirements.txt").resolve()
    # pip resolves nested -r/-c lines against the requirement file's own directory
    for nested in ("requirements/base.txt", "constraints.txt"):
        assert (project_file.parent / nested).is_file()


def test_hashed_requirements_installed_alone_then_the_runtime(
    project: Path, tmp_path: Path
) -> None:
    (project / "requirements.txt").write_text(
        "django==5.1.4 \\\n    --hash=sha256:" + "0" * 64 + "\n"
    )
    result, calls = install(project, tmp_path)
    assert result.returncode == 0, result.stderr
    assert [[f.name for f in requirement_files(c)] for c in calls] == [
        ["requirements.txt"],
        ["requirements.txt"],
    ]
    assert Path(calls[0]["cwd"], calls[0]["args"][2]).resolve() == project / "requirements.txt"
    assert ".djdeploy" in calls[1]["args"][2]


def test_pyproject_dependencies_written_outside_the_project(project: Path, tmp_path: Path) -> None:
    (project / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["Django"]\n')
    result, calls = install(project, tmp_path)
    assert result.returncode == 0, result.stderr
    (call,) = calls
    _, generated = requirement_files(call)
    assert generated.parent == tmp_path
    assert generated.read_text().split() == ["Django"]
    assert sorted(p.name for p in project.iterdir()) == [".djdeploy", "pyproject.toml"]


def test_no_requirements_fails_the_build(project: Path, tmp_path: Path) -> None:
    result, calls = install(project, tmp_path)
    assert result.returncode != 0 and calls == []
    assert "neither requirements.txt nor pyproject.toml" in result.stderr


def test_pyproject_without_dependencies_says_what_to_do(project: Path, tmp_path: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.poetry]\nname = "x"\n')
    result, calls = install(project, tmp_path)
    assert result.returncode != 0 and calls == []
    assert "lists no [project].dependencies" in result.stderr
    assert "requirements.txt" in result.stderr and "poetry export" in result.stderr
