"""The source preflight: what the image build and the container will check of the project,
checked on this machine before any API call (``plan`` and ``up`` run it), so that a project the
build would reject is refused in a second, not after the Cloud SQL instance was made.

    check(config)           raises PreflightError (one line per problem, each naming the fix)
    problems(source, settings_module=None) -> [str]

What is checked, in the order the build meets it:

- ``manage.py`` at the source's root or in its ``src/`` (the container's discover.project_dir);
- ``requirements.txt``, else ``pyproject.toml`` with ``[project].dependencies`` (the rule of
  install-requirements.sh and pyproject_deps.py), and that they list Django (the image build
  checks ``import django``; the runtime adds only gunicorn, psycopg and whitenoise). A
  requirement this cannot read (an URL, ``-e``, a path) is taken on trust;
- ``requires-python`` of ``pyproject.toml``, when it has one, admits the image's Python (the
  Dockerfile's ``PYTHON_IMAGE``);
- the settings module: ``settings_module``, else the one manage.py names (discover's rule), and
  its file in the directory holding manage.py (the only one the container puts on the path);
- ``django.contrib.staticfiles`` in the settings (the build runs ``collectstatic``), when the
  settings' own files set INSTALLED_APPS at all.

The container's rules are imported from it (djdeploy_container, shipped with the package: see
deployer/archive.py), not copied, so the two cannot disagree. Nothing of the project is imported
or run here: its dependencies are not installed on this machine.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from djdeploy_container.djdeploy_runtime import discover, pyproject_deps

from deployer.archive import container_dir, default_source
from deployer.errors import ConfigError

if TYPE_CHECKING:
    from deployer.config import Config

REQUIREMENTS = "requirements.txt"
PYPROJECT = "pyproject.toml"
STATICFILES = "django.contrib.staticfiles"
_PYTHON_IMAGE = re.compile(r"^ARG PYTHON_IMAGE=python:(\d+)\.(\d+)", re.M)
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?:[<>=!~;@(]|$)")
_INCLUDE = re.compile(r"^\s*(?:-r|--requirement)(?:\s+|=)(\S+)")
#: requirements-file options that name no requirement (any other makes the file unreadable here)
_OPTIONS_WITHOUT_NAMES = ("-c", "--constraint", "--hash", "--index-url", "--extra-index-url", "-i")
_CLAUSE = re.compile(r"^\s*(~=|===|==|!=|<=|>=|<|>)\s*([0-9]+(?:\.[0-9]+)*)(\.\*)?\s*$")


class PreflightError(ConfigError):
    """The project would fail the image build or the container's start: every problem found,
    one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def check(config: Config) -> None:
    """Raise PreflightError when the project (config.source, else the bundled sample) would
    fail the build or the container's start."""
    found = problems(config.source or default_source(), settings_module=config.settings_module)
    if found:
        raise PreflightError(found)


def problems(source: Path, *, settings_module: str | None = None) -> list[str]:
    """Every problem of the project at ``source``, one line each, naming the fix."""
    try:
        project = discover.project_dir(Path(source))
    except discover.DiscoveryError:
        return [
            f"no manage.py in {source} (nor in {Path(source) / 'src'}): point --source at your "
            "Django project's directory, the one holding manage.py (or its parent, for a src "
            "layout)"
        ]
    found = _requirements(Path(source))
    found += _python(Path(source))
    settings, problem = _settings(project, settings_module)
    if problem:
        found.append(problem)
    elif settings is not None:
        found += _staticfiles(settings)
    return found


# -- requirements ----------------------------------------------------------------------------


def _requirements(home: Path) -> list[str]:
    """install-requirements.sh's rule: requirements.txt, else pyproject.toml's dependencies."""
    requirements, pyproject = home / REQUIREMENTS, home / PYPROJECT
    if requirements.is_file():
        names = _names_in_file(requirements, seen=set())
        where = str(requirements)
    elif pyproject.is_file():
        try:
            deps = pyproject_deps.dependencies(pyproject)
        except (OSError, UnicodeDecodeError, ValueError, tomllib.TOMLDecodeError) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return [
                f"cannot read the dependencies of {pyproject} ({detail}): fix it, or add a "
                f"{REQUIREMENTS} at {home}"
            ]
        if not deps:
            return [f"{pyproject} {pyproject_deps.NO_DEPENDENCIES}"]
        names = _names(deps)
        where = f"{pyproject} [project].dependencies"
    else:
        return [
            f"{home} has no {REQUIREMENTS} (nor a {PYPROJECT}): the image build installs your "
            f"dependencies from it: create {home / REQUIREMENTS} listing them, at least "
            '"Django>=4.2" (or run `pip freeze > requirements.txt` in your virtualenv)'
        ]
    if names is not None and "django" not in names:
        return [
            f"{where} does not list Django: the image build installs only what it lists (and "
            'gunicorn, psycopg, whitenoise): add a line such as "Django>=4.2,<6"'
        ]
    return []


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(lines: list[str]) -> set[str] | None:
    """The project names of requirement lines; None when one cannot be read (an URL, ``-e``,
    a local path, an option we do not follow): then nothing is concluded."""
    names: set[str] = set()
    for raw in lines:
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            if line.startswith(
                ("-c", "--constraint", "--hash", "--index-url", "--extra-index-url", "-i")
            ):
                continue  # constraints and index options name no requirement
            return None
        match = _NAME.match(line)
        if match is None:
            return None
        names.add(_normalize(match.group(1)))
    return names


def _names_in_file(path: Path, *, seen: set[Path]) -> set[str] | None:
    """The names a requirements file lists, following its ``-r`` includes (relative to it)."""
    path = path.resolve()
    if path in seen:
        return set()
    seen.add(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None  # pip will say why; nothing concluded here
    lines: list[str] = []
    names: set[str] = set()
    for line in text.splitlines():
        include = _INCLUDE.match(line)
        if include:
            nested = _names_in_file(path.parent / include.group(1), seen=seen)
            if nested is None:
                return None
            names |= nested
        else:  # a hashed requirement continues on the next lines with a backslash
            lines.append(line.rstrip().removesuffix("\\"))
    own = _names(lines)
    return None if own is None else names | own


# -- Python version --------------------------------------------------------------------------


def image_python() -> tuple[int, int]:
    """The Python (major, minor) the image builds on: the Dockerfile's PYTHON_IMAGE default."""
    text = (container_dir() / "Dockerfile").read_text(encoding="utf-8")
    match = _PYTHON_IMAGE.search(text)
    if match is None:  # the Dockerfile is ours: tests/test_preflight.py holds it to the form
        raise ConfigError("container/Dockerfile has no ARG PYTHON_IMAGE=python:X.Y: reinstall")
    return int(match.group(1)), int(match.group(2))


def admits(spec: str, version: tuple[int, ...]) -> bool | None:
    """Whether a requires-python specifier admits ``version`` (None: a clause this does not
    read, such as an arbitrary-equality ``===``: taken on trust)."""
    for clause in spec.split(","):
        if not clause.strip():
            continue
        match = _CLAUSE.match(clause)
        if match is None or match.group(1) == "===":
            return None
        op, text, wildcard = match.groups()
        want = tuple(int(p) for p in text.split("."))
        if wildcard:
            if op not in ("==", "!="):
                return None
            prefix = version[: len(want)] == want
            if prefix != (op == "=="):
                return False
            continue
        if not _compare(op, version, want):
            return False
    return True


def _compare(op: str, have: tuple[int, ...], want: tuple[int, ...]) -> bool:
    width = max(len(have), len(want))
    a = have + (0,) * (width - len(have))
    b = want + (0,) * (width - len(want))
    if op == "~=":  # >= want, and the same release up to want's last-but-one part
        return a >= b and a[: len(want) - 1] == want[:-1]
    return {
        "==": a == b,
        "!=": a != b,
        "<=": a <= b,
        ">=": a >= b,
        "<": a < b,
        ">": a > b,
    }[op]


def _python(home: Path) -> list[str]:
    pyproject = home / PYPROJECT
    if not pyproject.is_file():
        return []
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []  # _requirements reports an unreadable file when the build would read it
    spec = data.get("project", {}).get("requires-python")
    if not isinstance(spec, str):
        return []
    major, minor = image_python()
    # the image's latest patch release: a bound on the patch (<=3.11.2) excludes it
    if admits(spec, (major, minor, 99)) is False:
        return [
            f'{pyproject} requires-python "{spec}" excludes Python {major}.{minor}, the '
            f"image's (python:{major}.{minor}-slim): make requires-python admit {major}.{minor}"
        ]
    return []


# -- settings --------------------------------------------------------------------------------


def _settings(project: Path, configured: str | None) -> tuple[Path | None, str | None]:
    """(the settings module's file, None) or (None, the problem): discover's rule, with
    settings_module in place of the container's DJANGO_PROJECT_SETTINGS."""
    manage = project / "manage.py"
    name = configured
    if not name:
        try:
            text = manage.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return None, f"cannot read {manage} ({exc.strerror}): make it readable"
        name = discover.settings_from_manage_py(text)
        if name is None:
            return None, (
                f"{manage} does not name the settings module (no os.environ.setdefault("
                '"DJANGO_SETTINGS_MODULE", "...") line): set settings_module = '
                '"mysite.settings" (your module) in djdeploy.toml'
            )
    if name == discover.RUNTIME_SETTINGS:
        return None, (
            f"the settings module cannot be {name} (that is djdeploy's runtime): set "
            "settings_module to your project's own"
        )
    rel = Path(*name.split("."))
    for candidate in (project / f"{rel}.py", project / rel / "__init__.py"):
        if candidate.is_file():
            return candidate, None
    origin = "settings_module" if configured else f"{manage}'s DJANGO_SETTINGS_MODULE"
    return None, (
        f'settings module "{name}" is not in {project} (no {rel}.py nor {rel}/__init__.py; '
        f"the container imports it from there): fix {origin}"
    )


def _staticfiles(settings: Path) -> list[str]:
    """The build runs collectstatic, which only django.contrib.staticfiles provides. Read as
    text, never imported: the settings' own file, and its package's files (split settings)."""
    files = [settings]
    if settings.name == "__init__.py" or (settings.parent / "__init__.py").is_file():
        files = sorted(settings.parent.glob("*.py"))
    texts = [_read(f) for f in files]
    if not any("INSTALLED_APPS" in t for t in texts):
        return []  # set elsewhere (an imported package): nothing concluded
    if any(STATICFILES in t for t in texts):
        return []
    return [
        f"{settings} sets INSTALLED_APPS without {STATICFILES}: the image build runs "
        f'collectstatic, which it provides: add "{STATICFILES}" to INSTALLED_APPS'
    ]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
