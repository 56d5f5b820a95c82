"""Print a project's PEP 621 dependencies ([project].dependencies) as requirement lines.

Used by the image build when the project has a pyproject.toml and no requirements.txt:
``python pyproject_deps.py pyproject.toml > requirements``. Only the dependencies are installed,
not the project itself: a Django project is run from its source tree, and a flat layout with
several top-level packages is not always installable.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

#: what is wrong with a pyproject.toml without dependencies, and the fix (the deployer's source
#: preflight says the same before any build)
NO_DEPENDENCIES = (
    "lists no [project].dependencies: list the project's requirements there (PEP 621), or add "
    "a requirements.txt at the project root (from Poetry: poetry export -f requirements.txt "
    "-o requirements.txt)"
)


def dependencies(path: Path) -> list[str]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    deps = data.get("project", {}).get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise ValueError(f"{path}: [project].dependencies must be a list of strings")
    return deps


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else "pyproject.toml")
    try:
        deps = dependencies(path)
    except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
        print(f"djdeploy: cannot read dependencies from {path}: {exc}", file=sys.stderr)
        return 1
    if not deps:
        print(f"djdeploy: {path} {NO_DEPENDENCIES}", file=sys.stderr)
        return 1
    print("\n".join(deps))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
