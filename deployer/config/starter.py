"""`djdeploy init`: the djdeploy.toml that deploys the Django project in a directory.

Without one, djdeploy run beside a manage.py refuses (it would deploy its bundled sample):
this writes the file the refusal names, with ``source = "."`` and the values given, checked as
a Config checks them. It never overwrites a file, and writes nothing where a djdeploy config
already is (a djdeploy.toml, or pyproject.toml's [tool.djdeploy]: the new file would hide it).
"""

from __future__ import annotations

import json
from pathlib import Path

from deployer.config.load import CONFIG_FILE, find_config_file, holds_project
from deployer.config.model import Config
from deployer.errors import ConfigError

HEADER = (
    "# djdeploy's settings for this Django project; docs/configuration.md lists every one.\n"
    "# Flags (--tenant, --project, ...) and DJDEPLOY_* variables override them.\n"
)


def starter_text(*, tenant: str | None, project: str | None, region: str | None) -> str:
    """The file's text: the values given, then ``source = "."`` (this file's directory)."""
    lines = [HEADER]
    for key, value in (("tenant", tenant), ("project", project), ("region", region)):
        if value is not None:
            lines.append(f"{key} = {json.dumps(value)}\n")
    lines.append('source = "."  # the Django project deployed: this file\'s directory\n')
    return "".join(lines)


def write_starter(
    cwd: Path, *, tenant: str | None, project: str | None, region: str | None
) -> Path:
    """Write cwd/djdeploy.toml for the project in cwd; ConfigError (nothing written) when cwd
    holds no Django project, already has a djdeploy config, or a value is invalid."""
    path = cwd / CONFIG_FILE
    found = find_config_file(cwd)
    if found is not None:
        what = f"[tool.djdeploy] in {found}" if found.name == "pyproject.toml" else str(found)
        raise ConfigError(
            f'{what} exists: nothing written; edit it instead (source = "." deploys this '
            "directory's project; docs/configuration.md lists every setting)"
        )
    if not holds_project(cwd):
        raise ConfigError(
            f"no manage.py in {cwd} (nor in {cwd / 'src'}): run `djdeploy init` in your Django "
            "project's directory (the bundled sample needs no config: `djdeploy up` deploys it "
            "from a directory without one)"
        )
    # the values as a Config checks them (a placeholder tenant when none is given)
    Config(
        tenant if tenant is not None else "demo",
        project=project or "",
        region=region if region is not None else Config.region,
        source=cwd,
    )
    text = starter_text(tenant=tenant, project=project, region=region)
    try:
        with path.open("x", encoding="utf-8") as fh:
            fh.write(text)
    except FileExistsError:  # made meanwhile: never overwritten
        raise ConfigError(f"{path} already exists: nothing written") from None
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    return path
