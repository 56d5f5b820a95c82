"""The docs name the CLI's flags as the CLI spells them: every `djdeploy <command> --flag` in the
docs (code spans, code blocks) is an option of that command, and every other `--flag` anywhere
in them is djdeploy's or another tool's that the docs quote (gcloud, pip, docker, manage.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from deployer.cli import app

REPO = Path(__file__).resolve().parents[1]
DOCS = [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
_SPAN = re.compile(r"`([^`\n]+)`")
_COMMAND = re.compile(r"(?:^|[\s/])djdeploy((?:\s+[a-z][a-z-]*)*)((?:\s+\S+)*)")
#: flags of other tools the docs quote, and the one misspelling shown on purpose (getting-started)
OTHERS = frozenset(
    {
        "--cert",  # pip
        "--command",  # manage.py shell
        "--database",  # gcloud sql connect
        "--email",  # manage.py createsuperuser
        "--username",  # manage.py createsuperuser
        "--env",  # buildah run
        "--extra-index-url",  # pip
        "--fail-level",  # manage.py check
        "--include",  # debootstrap
        "--index-url",  # pip
        "--isolation",  # buildah
        "--layers",  # buildah build
        "--force-rm",  # buildah build
        "--workingdir",  # buildah run
        "--all",  # buildah rm
        "--mount",  # Dockerfile RUN
        "--network",  # buildah
        "--pull",  # buildah build
        "--pull-never",  # buildah build
        "--storage-driver",  # buildah
        "--variant",  # debootstrap
        "--volume",  # buildah build
        "--activation-policy",  # gcloud sql instances patch
        "--billing-account",  # gcloud billing projects link
        "--bind",  # gunicorn
        "--build-arg",  # docker build
        "--clear",  # manage.py collectstatic
        "--days",  # a management command's own option in an example
        "--deploy",  # manage.py check
        "--description",  # gcloud sql backups create
        "--domain",  # gcloud beta run domain-mappings
        "--enable-auth",  # gcloud redis instances update
        "--no-enable-auth",  # gcloud redis instances update
        "--filter",  # gcloud builds list
        "--generate-hashes",  # pip-compile
        "--hash",  # pip requirements files
        "--instance",  # gcloud sql backups
        "--location",  # gcloud scheduler jobs run
        "--map-user",  # unshare
        "--n",  # bench/bench_emulator.py
        "--noinput",  # manage.py
        "--secret",  # gcloud secrets versions
        "--service",  # gcloud beta run domain-mappings create
        "--tennant",  # the misspelled option getting-started.md shows
        "--user",  # unshare
    }
)


def _options(command: Any) -> set[str]:
    names = {"--help"}
    for param in command.params:
        names.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("--"))
    return names


def _commands() -> dict[tuple[str, ...], set[str]]:
    """Every command path ((), ("up",), ("emulator", "serve")) -> its options."""
    root = typer.main.get_command(app)
    found: dict[tuple[str, ...], set[str]] = {}

    def walk(command: Any, path: tuple[str, ...]) -> None:
        found[path] = _options(command)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(root, ())
    return found


COMMANDS = _commands()
EVERY = set().union(*COMMANDS.values())


def _invocations(text: str) -> list[str]:
    """The code spans and code-block lines that run djdeploy."""
    lines = [m.group(1) for m in _SPAN.finditer(text)]
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    lines += [line for block in blocks for line in block.splitlines()]
    return [line for line in lines if _COMMAND.search(line.split("#", 1)[0])]


def _check(line: str) -> list[str]:
    match = _COMMAND.search(line.split("#", 1)[0])
    assert match is not None
    words = match.group(1).split()
    path: tuple[str, ...] = ()
    for word in words:
        if (*path, word) in COMMANDS:
            path = (*path, word)
        else:
            break
    allowed = COMMANDS[path] | COMMANDS[()]
    ours = match.group(0).split(" -- ", 1)[0]  # after `--`: another program's arguments
    return [f for f in _FLAG.findall(ours) if f not in allowed and f not in OTHERS]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_djdeploy_invocations_use_real_flags(doc: Path) -> None:
    wrong = {line: bad for line in _invocations(doc.read_text()) if (bad := _check(line))}
    assert wrong == {}, f"{doc.name}: flags the command does not take: {wrong}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_flag_named_in_the_docs_exists(doc: Path) -> None:
    unknown = sorted(set(_FLAG.findall(doc.read_text())) - EVERY - OTHERS)
    assert unknown == [], f"{doc.name} names flags djdeploy does not have: {unknown}"


def test_the_checker_catches_a_wrong_flag() -> None:
    assert _check("djdeploy up --tenant demo --delete-data") == ["--delete-data"]
    assert _check("djdeploy emulator serve --port 0 --yes") == ["--yes"]
    assert _check("djdeploy destroy --tenant demo --delete-data --yes") == []
    assert _check("djdeploy manage --tenant demo -- migrate --plan") == []
