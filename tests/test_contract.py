"""The deployer/container contract: deployer/contract.py, docs/container.md and the container's
runtime (container/entrypoint.sh, container/djdeploy_runtime/) must agree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from deployer.contract import CONTRACT, CONTRACT_NAMES

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "container.md"
ENTRYPOINT = REPO / "container" / "entrypoint.sh"
RUNTIME = REPO / "container" / "djdeploy_runtime"
DOCKERFILE = REPO / "container" / "Dockerfile"

_NAME = r"[A-Z][A-Z0-9_]*"
# Functions through which the runtime reads the environment (os.environ.get, its own helpers).
_PY_READERS = {"get", "setdefault", "pop", "getenv", "_env", "_env_list", "_positive_int"}
_SH_READ = re.compile(rf"\$\{{?({_NAME})")
_SH_REQUIRE = re.compile(r"^\s*require_env ((?:[A-Z_]+ ?)+)$", re.M)
_SH_ASSIGN = re.compile(rf"^\s*({_NAME})=(.*)$", re.M)


def docs_table(heading: str) -> list[list[str]]:
    """The rows (cells) of the first table after a heading in docs/container.md."""
    text = DOCS.read_text()
    match = re.search(rf"^#+ {re.escape(heading)}\s*$", text, re.M)
    assert match, f"docs/container.md has no heading {heading!r}"
    rows: list[list[str]] = []
    for line in text[match.end() :].splitlines():
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    assert len(rows) > 2, f"no table under {heading!r}"
    return rows[2:]  # without the header and the |---| line


def documented(heading: str) -> dict[str, list[str]]:
    rows = docs_table(heading)
    names = [re.fullmatch(r"`([A-Z0-9_]+)`", row[0]) for row in rows]
    assert all(names), f"every row under {heading!r} starts with a `NAME`"
    return {m.group(1): row for m, row in zip(names, rows, strict=True) if m}


def shell_reads() -> set[str]:
    text = "\n".join(
        line for line in ENTRYPOINT.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    reads = set(_SH_READ.findall(text))
    for group in _SH_REQUIRE.findall(text):
        reads.update(group.split())
    # Variables the script itself assigns without reading an inherited value are its own.
    for name, value in _SH_ASSIGN.findall(text):
        if not re.search(rf"\$\{{?{name}\b", value):
            reads.discard(name)
    reads.discard("PATH")  # command lookup, not configuration
    return reads


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _env_name(node: ast.AST) -> str | None:
    """The variable a node reads: os.environ.get("X"), os.getenv("X"), _env("X"), environ["X"]."""
    key: ast.AST | None = None
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in _PY_READERS:
            if _is_environ(func.value) or func.attr == "getenv":
                key = node.args[0]
        elif isinstance(func, ast.Name) and func.id in _PY_READERS:
            key = node.args[0]
    elif isinstance(node, ast.Subscript) and _is_environ(node.value):
        key = node.slice
    if isinstance(key, ast.Constant) and isinstance(key.value, str):
        return key.value if re.fullmatch(_NAME, key.value) else None
    return None


def python_reads() -> dict[str, set[str]]:
    """Environment variable -> the runtime modules that read it (found in the code, not text)."""
    found: dict[str, set[str]] = {}
    for path in sorted(RUNTIME.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            name = _env_name(node)
            if name:
                found.setdefault(name, set()).add(path.name)
    return found


def runtime_reads() -> set[str]:
    return shell_reads() | set(python_reads())


CONTRACT_TABLE = "The environment contract"
KNOBS_TABLE = "Runtime knobs"


def test_docs_table_lists_exactly_the_contract() -> None:
    assert set(documented(CONTRACT_TABLE)) == CONTRACT_NAMES


@pytest.mark.parametrize("var", CONTRACT, ids=lambda v: v.name)
def test_docs_agree_on_secret_and_scope(var) -> None:
    row = documented(CONTRACT_TABLE)[var.name]
    secret, where = row[1], row[2]
    assert secret == ("yes" if var.secret else "no")
    assert where == var.where


def test_every_contract_variable_is_read_by_the_container() -> None:
    assert CONTRACT_NAMES - runtime_reads() == set()


def test_the_container_reads_no_undeclared_variable() -> None:
    knobs = set(documented(KNOBS_TABLE))
    undeclared = runtime_reads() - CONTRACT_NAMES - knobs
    assert undeclared == set(), f"read by the container but in no docs table: {undeclared}"


def test_knobs_are_read_and_not_contract() -> None:
    knobs = set(documented(KNOBS_TABLE))
    assert knobs & CONTRACT_NAMES == set()
    assert knobs - runtime_reads() == set(), "documented knobs the container never reads"


def test_superuser_variables_are_read_only_by_the_migrate_step() -> None:
    reads = python_reads()
    for name in (
        "DJANGO_SUPERUSER_USERNAME",
        "DJANGO_SUPERUSER_EMAIL",
        "DJANGO_SUPERUSER_PASSWORD",
        "DJANGO_SUPERUSER_PASSWORD_PREVIOUS",
    ):
        assert reads.get(name) == {"superuser.py"}
    assert "DJANGO_SUPERUSER" not in ENTRYPOINT.read_text()
    migrate = ENTRYPOINT.read_text().split("migrate)")[1].split(";;")[0]
    assert "exec python3 -m djdeploy_runtime.migrate" in migrate
    assert "superuser.main()" in (RUNTIME / "migrate.py").read_text()


def test_dockerfile_sets_no_undeclared_variable() -> None:
    names = set()
    for block in re.findall(r"(?ms)^ENV (.*?)(?<!\\)$", DOCKERFILE.read_text()):
        names.update(re.findall(rf"({_NAME})=", block))
    python_and_pip = {
        "PATH",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONUNBUFFERED",
        "PIP_NO_CACHE_DIR",
        "PIP_DISABLE_PIP_VERSION_CHECK",
    }
    assert names - python_and_pip <= CONTRACT_NAMES | set(documented(KNOBS_TABLE))
    assert {"PORT", "APP_HOME", "DJANGO_SETTINGS_MODULE", "MEDIA_ROOT", "STATIC_ROOT"} <= names


def test_contract_secrets_are_the_expected_ones() -> None:
    assert {v.name for v in CONTRACT if v.secret} == {
        "SECRET_KEY",
        "SECRET_KEY_FALLBACKS",
        "DB_PASSWORD",
        "DJANGO_SUPERUSER_PASSWORD",
        "DJANGO_SUPERUSER_PASSWORD_PREVIOUS",
    }
