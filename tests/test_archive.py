"""The deterministic source archive: same input, same bytes; any change, another digest."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
import tomllib
from pathlib import Path

import pytest

from deployer.archive import (
    Archive,
    LazyArchive,
    archive_digest,
    build_archive,
    container_dir,
    default_source,
)
from deployer.errors import ConfigError


def _names(a: Archive) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(a.data)) as tar:
        return tar.getnames()


def _members(a: Archive) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(a.data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def _text(a: Archive, name: str) -> str:
    with tarfile.open(fileobj=io.BytesIO(a.data)) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read().decode()


@pytest.fixture
def container(tmp_path: Path) -> Path:
    c = tmp_path / "container"
    (c / "djdeploy_runtime").mkdir(parents=True)
    (c / "sample").mkdir()
    (c / "Dockerfile").write_text("FROM python:3.11-slim\n")
    (c / "entrypoint.sh").write_text('#!/bin/sh\nexec "$@"\n')
    (c / "entrypoint.sh").chmod(0o755)
    (c / "requirements.txt").write_text("gunicorn\n")
    (c / "djdeploy_runtime" / "__init__.py").write_text("")
    (c / "sample" / "manage.py").write_text("# sample\n")
    return c


@pytest.fixture
def project(tmp_path: Path) -> Path:
    p = tmp_path / "mysite"
    (p / "mysite").mkdir(parents=True)
    (p / "manage.py").write_text("#!/usr/bin/env python\n")
    (p / "mysite" / "settings.py").write_text("DEBUG = False\n")
    (p / "requirements.txt").write_text("django\n")
    return p


def test_layout_project_at_root_container_under_djdeploy(project: Path, container: Path) -> None:
    a = build_archive(project, container)
    names = _names(a)
    assert "manage.py" in names and "mysite/settings.py" in names
    assert ".djdeploy/Dockerfile" in names
    assert ".djdeploy/entrypoint.sh" in names
    assert ".djdeploy/djdeploy_runtime/__init__.py" in names
    assert not any(n.startswith(".djdeploy/sample") for n in names)
    assert names == sorted(names)
    assert a.tag == f"src-{a.digest[:16]}" and len(a.digest) == 64
    assert a.object_name == f"sources/{a.tag}.tar.gz"


def test_same_input_same_bytes_even_with_new_mtimes(project: Path, container: Path) -> None:
    a = build_archive(project, container)
    for path in [*project.rglob("*"), *container.rglob("*")]:
        os.utime(path, (1_000_000, 1_000_000))
    b = build_archive(project, container)
    assert a.data == b.data and a.digest == b.digest


def test_copy_elsewhere_gives_same_digest(project: Path, container: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere" / "other-name"
    shutil.copytree(project, copy)
    assert build_archive(copy, container).digest == build_archive(project, container).digest


def test_metadata_normalised(project: Path, container: Path) -> None:
    (project / "mysite" / "settings.py").chmod(0o600)
    (project / "manage.py").chmod(0o700)
    members = _members(build_archive(project, container))
    for m in members.values():
        assert m.mtime == 0 and m.uid == 0 and m.gid == 0
        assert m.uname == "" and m.gname == ""
    assert members["mysite/settings.py"].mode == 0o644
    assert members["manage.py"].mode == 0o755
    assert members["mysite"].mode == 0o755
    assert members[".djdeploy/entrypoint.sh"].mode == 0o755


def test_gzip_header_has_no_mtime_or_name(project: Path, container: Path) -> None:
    data = build_archive(project, container).data
    assert data[:2] == b"\x1f\x8b"
    assert data[4:8] == b"\x00\x00\x00\x00"  # mtime
    assert data[3] & 0x08 == 0  # no FNAME
    assert gzip.decompress(data)  # valid


@pytest.mark.parametrize(
    "change",
    [
        lambda p, c: (p / "mysite" / "settings.py").write_text("DEBUG = True\n"),
        lambda p, c: (p / "requirements.txt").write_text("django \n"),
        lambda p, c: (p / "new.py").write_text(""),
        lambda p, c: (p / "mysite" / "settings.py").rename(p / "mysite" / "settings2.py"),
        lambda p, c: (p / "mysite" / "settings.py").chmod(0o755),
        lambda p, c: (p / "emptydir").mkdir(),
        lambda p, c: (c / "Dockerfile").write_text("FROM python:3.12-slim\n"),
        lambda p, c: (c / "djdeploy_runtime" / "__init__.py").write_text(" "),
    ],
)
def test_any_change_changes_digest(project: Path, container: Path, change: object) -> None:
    before = build_archive(project, container)
    change(project, container)  # type: ignore[operator]
    after = build_archive(project, container)
    assert after.digest != before.digest and after.tag != before.tag


def test_default_exclusions(project: Path, container: Path) -> None:
    before = build_archive(project, container)
    for d in (".git", ".venv", "venv", "node_modules", "__pycache__", "media", ".djdeploy"):
        (project / d).mkdir()
        (project / d / "x.txt").write_text("junk")
    (project / "mysite" / "__pycache__").mkdir()
    (project / "mysite" / "__pycache__" / "settings.cpython-311.pyc").write_bytes(b"\0")
    (project / "mysite" / "old.pyc").write_bytes(b"\0")
    (project / ".env").write_text("SECRET=1")
    (container / "djdeploy_runtime" / "__pycache__").mkdir()
    (container / "djdeploy_runtime" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (container / "sample" / "more.py").write_text("")
    after = build_archive(project, container)
    assert after.data == before.data


def test_nested_media_dir_is_kept(project: Path, container: Path) -> None:
    (project / "mysite" / "media").mkdir()
    (project / "mysite" / "media" / "logo.png").write_bytes(b"png")
    assert "mysite/media/logo.png" in _names(build_archive(project, container))


def test_gcloudignore_and_dockerignore(project: Path, container: Path) -> None:
    (project / "docs").mkdir()
    (project / "docs" / "a.md").write_text("a")
    (project / "notes.txt").write_text("n")
    (project / "keep.txt").write_text("k")
    (project / "mysite" / "local_settings.py").write_text("x")
    (project / "data").mkdir()
    (project / "data" / "big.csv").write_text("1")
    (project / "data" / "small.csv").write_text("1")
    (project / ".gcloudignore").write_text("# comment\ndocs/\n*.txt\n!keep.txt\n")
    (project / ".dockerignore").write_text("mysite/local_*.py\ndata/**/big.csv\n")
    names = _names(build_archive(project, container))
    assert "docs" not in names and "docs/a.md" not in names
    assert "notes.txt" not in names and "requirements.txt" not in names
    assert "keep.txt" in names
    assert "mysite/local_settings.py" not in names
    assert "data/big.csv" not in names and "data/small.csv" in names
    # applied here, not shipped: docker build would apply .dockerignore a second time
    assert ".gcloudignore" not in names and ".dockerignore" not in names


def test_dotfile_dockerignore_keeps_the_container_files(project: Path, container: Path) -> None:
    """A common ``.*`` line: the project's dotfiles go, .djdeploy/ (ours) stays, and the
    .dockerignore is not in the context for docker build to apply to .djdeploy/ again."""
    (project / ".dockerignore").write_text(".*\n")
    (project / ".gitignore").write_text("*.log\n")
    names = _names(build_archive(project, container))
    assert ".gitignore" not in names and ".dockerignore" not in names
    assert ".djdeploy/Dockerfile" in names and ".djdeploy/entrypoint.sh" in names
    assert ".djdeploy/djdeploy_runtime/__init__.py" in names


def test_ignore_files_do_not_change_the_digest_by_themselves(
    project: Path, container: Path
) -> None:
    before = build_archive(project, container)
    (project / ".dockerignore").write_text("# nothing excluded\n")
    (project / ".gcloudignore").write_text("# nothing excluded\n")
    assert build_archive(project, container).digest == before.digest


def test_root_sqlite_database_is_excluded(project: Path, container: Path) -> None:
    before = build_archive(project, container)
    for name in ("db.sqlite3", "db.sqlite3-journal"):
        (project / name).write_bytes(b"SQLite format 3\0")
    assert build_archive(project, container).data == before.data
    (project / "mysite" / "db.sqlite3").write_bytes(b"fixture")  # not the root one: kept
    assert "mysite/db.sqlite3" in _names(build_archive(project, container))


def test_deploy_only_files_are_left_out(project: Path, container: Path) -> None:
    """The deployer's config and CI workflows: the container reads neither, so editing them
    (a [[cron]] schedule, a memory size, a workflow's branch) builds no new image."""
    before = build_archive(project, container)
    (project / "djdeploy.toml").write_text('source = "."\n[service]\nmemory = "1Gi"\n')
    (project / "deploy").mkdir()
    (project / "deploy" / "djdeploy.toml").write_text('source = ".."\n')
    (project / ".github" / "workflows").mkdir(parents=True)
    (project / ".github" / "workflows" / "djdeploy.yml").write_text("on: push\n")
    after = build_archive(project, container)
    assert set(_names(after)) - set(_names(before)) == {"deploy"}
    (project / "mysite" / ".github").mkdir()  # not the root one: kept
    assert "mysite/.github" in _names(build_archive(project, container))


def test_the_deployments_config_file_in_the_project_is_left_out(
    project: Path, container: Path
) -> None:
    """A config under another name (--config deploy/prod.toml) is the deployer's as
    djdeploy.toml is: left out, so editing a deploy-only setting in it builds no new image."""
    (project / "deploy").mkdir()
    config = project / "deploy" / "prod.toml"
    config.write_text('source = ".."\n[service]\nmemory = "1Gi"\n')
    (project / "prod.toml").write_text("# the same name elsewhere is another file\n")
    before = build_archive(project, container, config_file=config)
    assert "deploy/prod.toml" not in _names(before)
    assert {"deploy", "prod.toml"} <= set(_names(before))
    config.write_text('source = ".."\n[service]\nmemory = "2Gi"\n')
    after = build_archive(project, container, config_file=config)
    assert after.data == before.data
    lazy = LazyArchive(project, container, config_file=config)
    assert (lazy.digest, lazy.data) == (before.digest, before.data)
    # a relative path (resolved from the working directory) names the same file
    relative = Path(os.path.relpath(config))
    assert build_archive(project, container, config_file=relative).digest == before.digest
    # not the deployment's config: shipped like any file
    assert "deploy/prod.toml" in _names(build_archive(project, container))


def test_a_config_file_outside_the_project_or_a_pyproject_changes_nothing(
    project: Path, container: Path, tmp_path: Path
) -> None:
    before = build_archive(project, container)
    outside = tmp_path / "prod.toml"
    outside.write_text('source = "mysite"\n')
    assert build_archive(project, container, config_file=outside).data == before.data
    (project / "pyproject.toml").write_text('[project]\nname = "mysite"\n')
    with_pyproject = build_archive(project, container)
    config = project / "pyproject.toml"  # the build may read its dependencies: kept
    assert build_archive(project, container, config_file=config).data == with_pyproject.data
    assert "pyproject.toml" in _names(with_pyproject)


PYPROJECT = """\
[project]
name = "mysite"
dependencies = ["django"]  # installed by the image build

# the deployment
[tool.djdeploy]
tenant = "acme"
source = "."

[tool.djdeploy.service]
memory = "{memory}"

[[tool.djdeploy.cron]]
name = "nightly"
schedule = "{schedule}"
command = ["clearsessions"]

[tool.ruff]
line-length = 100
"""


def test_pyproject_ships_without_tool_djdeploy(project: Path, container: Path) -> None:
    """[tool.djdeploy] is the deployer's config, as djdeploy.toml is: the pyproject.toml ships
    without it (the build reads its dependencies), so a deploy-only edit there builds no new
    image, while an edit of the rest does."""
    pyproject = project / "pyproject.toml"
    pyproject.write_text(PYPROJECT.format(memory="1Gi", schedule="0 3 * * *"))
    before = build_archive(project, container, config_file=pyproject)
    shipped = _text(before, "pyproject.toml")
    assert shipped == (
        '[project]\nname = "mysite"\n'
        'dependencies = ["django"]  # installed by the image build\n\n'
        "[tool.ruff]\nline-length = 100\n"
    )
    assert tomllib.loads(shipped) == {
        "project": {"name": "mysite", "dependencies": ["django"]},
        "tool": {"ruff": {"line-length": 100}},
    }
    pyproject.write_text(PYPROJECT.format(memory="2Gi", schedule="0 4 * * *"))
    assert build_archive(project, container, config_file=pyproject).data == before.data
    assert build_archive(project, container).data == before.data  # read from the cwd, or not
    assert LazyArchive(project, container).digest == before.digest
    pyproject.write_text(
        PYPROJECT.replace('["django"]', '["django", "whitenoise"]').format(
            memory="2Gi", schedule="0 4 * * *"
        )
    )
    assert build_archive(project, container).digest != before.digest


def test_a_pyproject_whose_table_cannot_be_cut_exactly_ships_as_it_is(
    project: Path, container: Path
) -> None:
    """Anywhere in the project; and one whose [tool.djdeploy] is a value of a kept key has no
    line of its own to cut: shipped unchanged rather than cut wrong."""
    nested = project / "vendor" / "pkg" / "pyproject.toml"
    nested.parent.mkdir(parents=True)
    nested.write_text('[project]\nname = "pkg"\n[tool.djdeploy]\ntenant = "acme"\n')
    inline = 'tool = { djdeploy = { tenant = "acme" }, ruff = { line-length = 100 } }\n'
    (project / "pyproject.toml").write_text(inline)
    a = build_archive(project, container)
    assert _text(a, "vendor/pkg/pyproject.toml") == '[project]\nname = "pkg"\n'
    assert _text(a, "pyproject.toml") == inline


def test_root_media_app_package_is_kept(project: Path, container: Path) -> None:
    """Only the uploads directory is dropped: a root app named media (a package) is code."""
    (project / "media").mkdir()
    (project / "media" / "upload.jpg").write_bytes(b"jpg")
    assert not any(n.startswith("media") for n in _names(build_archive(project, container)))
    (project / "media" / "__init__.py").write_text("")
    (project / "media" / "models.py").write_text("# app\n")
    names = _names(build_archive(project, container))
    assert {"media", "media/__init__.py", "media/models.py", "media/upload.jpg"} <= set(names)


def test_gcloudignore_include_gitignore(project: Path, container: Path) -> None:
    (project / ".gitignore").write_text("*.log\n")
    (project / ".gcloudignore").write_text("#!include:.gitignore\n")
    (project / "debug.log").write_text("x")
    assert "debug.log" not in _names(build_archive(project, container))


def test_symlink_stored_as_link(project: Path, container: Path) -> None:
    (project / "link.py").symlink_to("manage.py")
    m = _members(build_archive(project, container))["link.py"]
    assert m.issym() and m.linkname == "manage.py"


def test_missing_source_or_container(project: Path, container: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        build_archive(tmp_path / "nope", container)
    with pytest.raises(ConfigError, match="Dockerfile"):
        build_archive(project, tmp_path)


def test_bundled_sample_and_container() -> None:
    a = build_archive(default_source(), container_dir())
    names = _names(a)
    assert "manage.py" in names and ".djdeploy/Dockerfile" in names
    assert ".djdeploy/entrypoint.sh" in names
    assert not any(n.startswith(".djdeploy/sample") for n in names)
    assert build_archive(default_source(), container_dir()).data == a.data
    assert "bytes" in repr(a) and a.tag in repr(a)


def test_lazy_archive_digest_without_compressing(project: Path, container: Path) -> None:
    built = build_archive(project, container)
    assert archive_digest(project, container) == built.digest
    lazy = LazyArchive(project, container)
    assert (lazy.digest, lazy.tag, lazy.object_name) == (
        built.digest,
        built.tag,
        built.object_name,
    )
    assert not lazy.built  # the tag alone never builds the tar.gz
    assert lazy.data == built.data and lazy.built


def test_lazy_archive_refuses_files_changed_after_the_digest(
    project: Path, container: Path
) -> None:
    lazy = LazyArchive(project, container)
    tag = lazy.tag
    (project / "manage.py").write_text("# changed after the tag was computed\n")
    with pytest.raises(ConfigError, match=f"changed while deploying \\(image tag {tag}"):
        _ = lazy.data


def test_lazy_archive_unreadable_source_fails_on_digest(tmp_path: Path, container: Path) -> None:
    with pytest.raises(ConfigError, match="is not a directory"):
        _ = LazyArchive(tmp_path / "missing", container).tag
