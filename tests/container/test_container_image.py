"""The Dockerfile and entrypoint: linted, and their contents checked (there is no Docker engine
here to build the image)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from container_helpers import CONTAINER, ENTRYPOINT, REPO

DOCKERFILE = CONTAINER / "Dockerfile"


def tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


def code(path: Path) -> str:
    """A file without its comment lines."""
    lines = path.read_text().splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def stages() -> list[str]:
    """The Dockerfile's stages, each from its FROM line (comments dropped)."""
    return re.split(r"(?m)^(?=FROM )", code(DOCKERFILE))[1:]


def test_hadolint_clean() -> None:
    result = subprocess.run(
        [tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_shellcheck_clean() -> None:
    result = subprocess.run(
        [tool("shellcheck"), str(ENTRYPOINT)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_inline_ignores_carry_a_reason() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore" in line:
            assert lines[i - 1].startswith("#") and "hadolint" not in lines[i - 1], (
                f"line {i + 1}: an inline ignore needs a reason comment above it"
            )


def test_base_image_is_an_argument_defaulting_to_python_311_slim_on_a_pinned_release() -> None:
    """`python:3.11-slim` follows Debian's newest release, and with it the apt package names
    (libgdal32 on bookworm): the tag names the release the docs are written for."""
    text = DOCKERFILE.read_text()
    assert re.search(r"(?m)^ARG PYTHON_IMAGE=python:3\.11-slim-bookworm$", text)
    docs = (REPO / "docs" / "container.md").read_text()
    assert "`python:3.11-slim-bookworm`" in docs
    assert text.index("ARG PYTHON_IMAGE") < text.index("FROM ")
    froms = re.findall(r"(?m)^FROM (\S+)", text)
    assert froms == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]


def test_multi_stage_with_no_compilers_in_the_final_stage() -> None:
    builder, final = stages()
    assert "AS builder" in builder.splitlines()[0]
    assert "build-essential" in builder
    for word in ("build-essential", "gcc", "g++", "-dev", "make ", "BUILD_APT_PACKAGES"):
        assert word not in final, f"{word!r} in the final stage"
    assert "COPY --from=builder /venv /venv" in final


@pytest.mark.parametrize("stage", [0, 1], ids=["builder", "final"])
def test_apt_caches_removed_in_the_layer_that_fills_them(stage: int) -> None:
    """Without the base's docker-clean, apt's pkgcache files stay in the layer (77 MB)."""
    (run,) = [r for r in re.split(r"(?m)^(?=RUN )", stages()[stage]) if "apt-get install" in r]
    assert "apt-get clean" in run
    assert "rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin" in run


def test_package_index_and_ca_are_empty_builder_args() -> None:
    """Empty values, which pip ignores, keep a build without them as it was; declared in the
    builder only, so the final image's history does not carry an index URL's credentials."""
    builder, final = stages()
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CERT"):
        assert re.search(rf'(?m)^ARG {name}=""$', builder), name
        assert name not in final
        assert builder.index(f"ARG {name}") < builder.index("install-requirements.sh")


def test_no_buildkit_only_syntax() -> None:
    """Cloud Build's docker step runs the classic builder, which rejects `RUN --mount`."""
    assert not re.search(r"(?m)^RUN --", code(DOCKERFILE))


def test_final_stage_runs_as_django_2000() -> None:
    final = stages()[-1]
    assert "groupadd --gid 2000 django" in final
    assert re.search(r"useradd --uid 2000 --gid 2000 .*django", final, re.S)
    users = re.findall(r"(?m)^USER (\S+)", final)
    assert users and users[-1] == "2000:2000"
    assert "chown 2000:2000 /app/media /srv/static" in final


def test_static_root_is_outside_the_project_tree() -> None:
    """A project with STATICFILES_DIRS = [BASE_DIR / "static"] (Django's tutorial layout) would
    fail collectstatic with staticfiles.E002 if STATIC_ROOT were /app/static."""
    final = stages()[-1]
    env = dict(re.findall(r"(?m)^\s+([A-Z_]+)=(\S+?)(?: \\)?$", final))
    assert env["STATIC_ROOT"] == "/srv/static"
    assert not env["STATIC_ROOT"].startswith(env["APP_HOME"] + "/")


def test_listens_on_port_8080_by_default() -> None:
    final = stages()[-1]
    assert re.search(r"(?m)^EXPOSE 8080$", final)
    assert re.search(r"(?m)^\s+PORT=8080 \\$", final)
    assert 'ENTRYPOINT ["/opt/djdeploy/entrypoint.sh"]' in final
    assert 'CMD ["serve"]' in final


def test_build_context_layout() -> None:
    """Project at the context root, djdeploy's files under .djdeploy/."""
    builder, final = stages()
    assert "COPY . /app" in builder
    for piece in (".djdeploy/requirements.txt", ".djdeploy/install-requirements.sh"):
        assert piece in builder
        assert (CONTAINER / piece.removeprefix(".djdeploy/")).is_file()
    assert "mv /app/.djdeploy /opt/djdeploy" in builder
    assert "COPY --from=builder /app /app" in final
    assert "APP_HOME=/app" in final
    assert "DJANGO_SETTINGS_MODULE=djdeploy_runtime.settings" in final


def test_both_stages_use_the_same_project_path() -> None:
    """`-e .` or a local-path requirement records the builder's path in the virtualenv."""
    builder, final = stages()
    assert re.findall(r"(?m)^WORKDIR (\S+)", builder) == ["/app"]
    assert re.findall(r"(?m)^WORKDIR (\S+)", final) == ["/app"]


def test_no_syntax_directive() -> None:
    """A `# syntax=` line makes BuildKit pull a frontend image; nothing here needs one."""
    assert "syntax=" not in DOCKERFILE.read_text().splitlines()[0]


def test_unparsable_python_does_not_fail_the_build() -> None:
    (line,) = [line for line in code(DOCKERFILE).splitlines() if "compileall" in line]
    assert line.rstrip().endswith("|| true")


def test_requirements_installed_in_place_from_the_project_root() -> None:
    builder = stages()[0]
    assert "cp requirements.txt" not in builder
    assert builder.index("WORKDIR /app") < builder.index("install-requirements.sh")
    assert "sh .djdeploy/install-requirements.sh .djdeploy/requirements.txt" in builder


def test_static_files_collected_at_build_as_the_app_user() -> None:
    final = stages()[-1]
    assert final.index("USER 2000:2000") < final.index('"collectstatic"')
    assert "--clear" not in code(DOCKERFILE)


def test_runtime_requirements_are_pinned_ranges() -> None:
    lines = [
        line.strip()
        for line in (CONTAINER / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    names = {re.split(r"[<>=\[]", line)[0].lower() for line in lines}
    assert names == {"gunicorn", "psycopg", "whitenoise"}
    assert any(line.startswith("psycopg[binary]>=3") for line in lines)
    for line in lines:
        assert ">=" in line and "<" in line, f"{line}: needs a lower and an upper bound"


@pytest.mark.parametrize("script", [ENTRYPOINT, CONTAINER / "install-requirements.sh"])
def test_scripts_are_posix_sh_executable_and_shellcheck_clean(script: Path) -> None:
    assert script.read_text().startswith("#!/bin/sh\n")
    assert script.stat().st_mode & 0o111
    assert "--clear" not in code(script)
    result = subprocess.run(
        [tool("shellcheck"), str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_real_image_script_is_executable_and_shellcheck_clean() -> None:
    """tests/container/real_image.sh, which CI runs to build and run the image for real."""
    script = Path(__file__).parent / "real_image.sh"
    assert script.stat().st_mode & 0o111
    result = subprocess.run(
        [tool("shellcheck"), str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
