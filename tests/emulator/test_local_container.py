"""What a Cloud Run container becomes locally (no process started): argv, env and paths."""

from __future__ import annotations

from pathlib import Path

from deployer.emulator.local.container import (
    ContainerRun,
    Paths,
    process_spec,
    release_short_dir,
    short_dir,
)
from deployer.emulator.local.image import Image, ImageConfig, finish_image

CONFIG = ImageConfig(
    entrypoint=["/opt/djdeploy/entrypoint.sh"],
    cmd=["serve"],
    env={"PATH": "/venv/bin:/usr/bin", "APP_HOME": "/app", "PORT": "8080"},
)


def image(tmp_path: Path) -> Image:
    root = tmp_path / "images" / ("ab" * 32)
    root.mkdir(parents=True)
    return finish_image(root, CONFIG)


def test_paths_mounts_win_over_the_image(tmp_path: Path) -> None:
    img = image(tmp_path)
    paths = Paths(img, {"/cloudsql": tmp_path / "sql", "/app/media": tmp_path / "bucket"})
    assert paths.local("/app/media/a.png") == str(tmp_path / "bucket" / "a.png")
    assert paths.local("/app/manage.py") == str(img.root / "app" / "manage.py")
    assert paths.local("/cloudsql/p:r:i") == str(tmp_path / "sql" / "p:r:i")
    assert paths.local("/cloudsqlx") == "/cloudsqlx"
    assert paths.local("relative/app") == "relative/app"
    assert paths.value("PATH", "/venv/bin:/usr/bin") == f"{img.root}/venv/bin:/usr/bin"


def test_process_spec(tmp_path: Path) -> None:
    img = image(tmp_path)
    container = {"args": ["manage", "check", "/app/x"], "env": []}
    spec = process_spec(
        ContainerRun(
            img,
            container,
            "job",
            env={"SECRET_KEY": "s3cret", "DB_HOST": "/cloudsql/p:r:i", "PORT": "1"},
            platform_env={"PORT": "5555"},
            mounts={"/cloudsql": tmp_path / "sql"},
        )
    )
    assert spec.argv == [
        f"{img.root}/djdeploy/entrypoint.sh",
        "manage",
        "check",
        f"{img.root}/app/x",
    ]
    assert "s3cret" not in " ".join(spec.argv)
    assert spec.env["SECRET_KEY"] == "s3cret"
    assert spec.env["DB_HOST"] == str(tmp_path / "sql" / "p:r:i")
    assert spec.env["PORT"] == "5555"  # Cloud Run's PORT wins
    assert spec.env["APP_HOME"] == spec.env["HOME"] == str(img.root / "app")
    assert spec.cwd == img.root / "app"
    # no args: the image's CMD; a command: the image's ENTRYPOINT and CMD are replaced
    assert process_spec(ContainerRun(img, {}, "s")).argv == [
        f"{img.root}/djdeploy/entrypoint.sh",
        "serve",
    ]
    command = {"command": ["python3"], "args": ["-V"]}
    assert process_spec(ContainerRun(img, command, "s")).argv == ["python3", "-V"]


def test_short_dir_for_long_socket_paths(tmp_path: Path) -> None:
    names = ["p:europe-west1:db"]
    assert short_dir(Path("/tmp/x"), names=names) == Path("/tmp/x")
    long = tmp_path / ("d" * 60)
    long.mkdir()
    link = short_dir(long, names=names)
    assert link != long and link.resolve() == long.resolve() and len(str(link)) < 40
    assert short_dir(long, names=names) == link
    release_short_dir(long)
    assert not link.is_symlink()
