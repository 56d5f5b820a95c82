"""Find the project and its own settings module, and check that they load.

The project is the directory holding ``manage.py``: ``APP_HOME``, or ``APP_HOME/src`` for a src
layout. ``DJANGO_PROJECT_SETTINGS`` names the settings module; when unset, manage.py's
``os.environ.setdefault("DJANGO_SETTINGS_MODULE", "...")`` (or an assignment
``os.environ["DJANGO_SETTINGS_MODULE"] = "..."``) does. Run as
``python -m djdeploy_runtime.discover``: imports the settings module and prints its name and the
project directory, one a line; or logs one clear error line and exits 2.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
from pathlib import Path

RUNTIME_SETTINGS = "djdeploy_runtime.settings"

_SETTINGS_IN_MANAGE_PY = re.compile(
    r"""os\.environ(?:\.setdefault\(\s*|\[\s*)['"]DJANGO_SETTINGS_MODULE['"]"""
    r"""(?:\s*,\s*|\s*\]\s*=\s*)['"]([\w.]+)['"]"""
)


class DiscoveryError(Exception):
    """The project or its settings module cannot be found or loaded."""


def app_home() -> Path:
    return Path(os.environ.get("APP_HOME") or "/app")


def project_dir(home: Path | None = None) -> Path:
    """The directory holding manage.py: APP_HOME, else APP_HOME/src."""
    home = app_home() if home is None else home
    for directory in (home, home / "src"):
        if (directory / "manage.py").is_file():
            return directory
    raise DiscoveryError(
        f"no manage.py in {home} (nor in {home / 'src'}): APP_HOME must be the Django project root"
    )


def settings_from_manage_py(text: str) -> str | None:
    match = _SETTINGS_IN_MANAGE_PY.search(text)
    return match.group(1) if match else None


def find_settings_module(home: Path | None = None) -> str:
    """The project's settings module name; raises DiscoveryError with a one-line reason."""
    manage = project_dir(home) / "manage.py"
    name = os.environ.get("DJANGO_PROJECT_SETTINGS", "").strip()
    if not name:
        found = settings_from_manage_py(manage.read_text(encoding="utf-8", errors="replace"))
        if found is None:
            raise DiscoveryError(
                f"no settings module found: {manage} has no "
                "os.environ.setdefault('DJANGO_SETTINGS_MODULE', '...') line; "
                "set DJANGO_PROJECT_SETTINGS to the project's settings module"
            )
        name = found
    if name == RUNTIME_SETTINGS:
        raise DiscoveryError(
            f"the project's settings module cannot be {RUNTIME_SETTINGS} (that is the runtime)"
        )
    return name


def import_settings(name: str, directory: Path) -> None:
    """Import the project's settings module as the runtime will, or say in one line why not."""
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the answer
            importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise DiscoveryError(f"settings module {name!r} not found in {directory}") from None
        raise _import_failed(name, exc) from None
    except Exception as exc:
        raise _import_failed(name, exc) from None


def _import_failed(name: str, exc: Exception) -> DiscoveryError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return DiscoveryError(
        f"settings module {name!r} failed to import: {type(exc).__name__}: {detail}; "
        "settings must import with only the deployment's environment set (read other "
        "variables with os.environ.get and a default); see docs/container.md"
    )


#: the one place a ``*`` may stand in ALLOWED_HOSTS: a Cloud Run service's older host
RUN_APP_SUFFIX = ".a.run.app"


class HostPattern(str):
    """An ALLOWED_HOSTS entry with ``*`` standing for one run of letters and digits:
    ``<service>-*-<code>.a.run.app``, the service's older host, whose hash Cloud Run makes up
    on the first deploy (the deployer's ``Names.run_app_host_pattern``). Django compares each
    entry with the request's host by ``==`` (``django.utils.http.is_same_domain``, after
    ``.lower()``), so the pattern answers both (tests/container/test_container_runtime.py
    checks it against Django's own ``validate_host``)."""

    regex: re.Pattern[str]

    def __new__(cls, pattern: str) -> HostPattern:
        self = super().__new__(cls, pattern)
        parts = (re.escape(part) for part in pattern.split("*"))
        self.regex = re.compile("[a-z0-9]+".join(parts))
        return self

    def lower(self) -> HostPattern:  # type: ignore[override]
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and self.regex.fullmatch(other) is not None

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = str.__hash__


def allowed_hosts() -> list[str]:
    """ALLOWED_HOSTS from the environment, comma-separated; never '*'. A ``*`` only inside a
    ``.a.run.app`` host, as part of a label (the service's older host: HostPattern)."""
    hosts = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
    for host in hosts:
        if "*" in host and (
            not host.endswith(RUN_APP_SUFFIX) or any(p == "*" for p in host.split("."))
        ):
            raise DiscoveryError(
                "ALLOWED_HOSTS must not contain '*': list the service's own host(s), "
                "comma-separated"
            )
    return [HostPattern(h) if "*" in h else h for h in hosts]


def main() -> int:
    from djdeploy_runtime.jsonlog import get_logger

    try:
        allowed_hosts()
        home = app_home()
        directory = project_dir(home)
        name = find_settings_module(home)
        import_settings(name, directory)
    except DiscoveryError as exc:
        get_logger("djdeploy.discover").error("%s", exc)
        return 2
    print(name)
    print(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
