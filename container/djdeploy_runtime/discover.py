"""Find the project's own settings module.

``DJANGO_PROJECT_SETTINGS`` names it; when unset, manage.py's
``os.environ.setdefault("DJANGO_SETTINGS_MODULE", "...")`` does. Run as
``python -m djdeploy_runtime.discover``: prints the module name, or logs one clear error line and
exits 2.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

RUNTIME_SETTINGS = "djdeploy_runtime.settings"

_SETDEFAULT = re.compile(
    r"""os\.environ\.setdefault\(\s*['"]DJANGO_SETTINGS_MODULE['"]\s*,\s*['"]([\w.]+)['"]\s*\)"""
)


class DiscoveryError(Exception):
    """The project or its settings module cannot be found."""


def app_home() -> Path:
    return Path(os.environ.get("APP_HOME") or "/app")


def settings_from_manage_py(text: str) -> str | None:
    match = _SETDEFAULT.search(text)
    return match.group(1) if match else None


def find_settings_module(home: Path | None = None) -> str:
    """The project's settings module name; raises DiscoveryError with a one-line reason."""
    home = app_home() if home is None else home
    manage = home / "manage.py"
    if not manage.is_file():
        raise DiscoveryError(f"no manage.py in {home}: APP_HOME must be the Django project root")
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


def check_importable(name: str, home: Path) -> None:
    if str(home) not in sys.path:
        sys.path.insert(0, str(home))
    try:
        spec = importlib.util.find_spec(name)
    except Exception as exc:  # a parent package failed to import: say which and why
        raise DiscoveryError(
            f"settings module {name!r} cannot be imported from {home}: {type(exc).__name__}: {exc}"
        ) from exc
    if spec is None:
        raise DiscoveryError(f"settings module {name!r} not found in {home}")


def main() -> int:
    from djdeploy_runtime.jsonlog import get_logger

    home = app_home()
    try:
        name = find_settings_module(home)
        check_importable(name, home)
    except DiscoveryError as exc:
        get_logger("djdeploy.discover").error("%s", exc)
        return 2
    print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
