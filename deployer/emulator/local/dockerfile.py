"""What a local build reads from the project's Dockerfile: the config (ENV, ENTRYPOINT, CMD,
WORKDIR) its final stage gives the image, with the build args applied, so a local image runs
with the environment the real one has. The RUN steps are not interpreted: the local build
follows them by hand (:mod:`deployer.emulator.local.build`).

The subset container/Dockerfile uses: line continuations, comments, ``ARG NAME[=default]``
(global before the first FROM, re-declared in a stage to be used there), ``ENV K=V ...``,
``$NAME`` / ``${NAME}`` substitution, exec-form (JSON) ENTRYPOINT and CMD.
"""

from __future__ import annotations

import json
import re
import shlex

from .image import ImageConfig

#: the environment of the base image (python:3.11-slim) that the Dockerfile's ENV extends
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


class DockerfileError(Exception):
    """The Dockerfile cannot be read as a build of it would read it."""


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) per logical line: continuations joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _substitute(value: str, scope: dict[str, str]) -> str:
    return _VAR.sub(lambda m: scope.get(m.group(1) or m.group(2), ""), value)


def _exec_form(instruction: str, rest: str) -> list[str]:
    try:
        value = json.loads(rest)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DockerfileError(f"{instruction} must be in exec form (a JSON array): {rest}")
    return value


def final_config(text: str, build_args: dict[str, str]) -> ImageConfig:
    """The image config of the Dockerfile's last stage, built with ``build_args``."""
    return _read(text, build_args)[0]


def base_images(text: str, build_args: dict[str, str]) -> list[str]:
    """The images the Dockerfile's stages start FROM, with ``build_args`` applied (a stage
    named by an earlier stage's ``AS`` is not an image), in order, each once."""
    return _read(text, build_args)[1]


def _read(text: str, build_args: dict[str, str]) -> tuple[ImageConfig, list[str]]:
    global_args: dict[str, str] = {}
    bases: list[str] = []
    stages: set[str] = set()
    args: dict[str, str] | None = None  # the current stage's declared args
    env: dict[str, str] = {}
    entrypoint: list[str] = []
    cmd: list[str] = []
    workdir = "/"
    for instruction, rest in _instructions(text):
        scope = {**(global_args if args is None else args), **env}
        if instruction == "FROM":
            args, env, entrypoint, cmd, workdir = {}, dict(BASE_ENV), [], [], "/"
            words = _substitute(rest, global_args).split()
            image = next((w for w in words if not w.startswith("--")), "")
            if image and image not in stages and image not in bases:
                bases.append(image)
            if len(words) >= 2 and words[-2].upper() == "AS":
                stages.add(words[-1])
        elif instruction == "ARG":
            name, eq, default = rest.partition("=")
            declared = global_args if args is None else args
            if name in build_args:
                declared[name] = build_args[name]
            elif eq:
                declared[name] = "".join(shlex.split(_substitute(default, scope)))
            else:
                declared[name] = global_args.get(name, "")
        elif instruction == "ENV":
            for pair in shlex.split(rest):
                key, eq, value = pair.partition("=")
                if not eq:
                    raise DockerfileError(f"ENV must be KEY=VALUE: {rest}")
                env[key] = _substitute(value, {**scope, **env})
        elif instruction == "ENTRYPOINT":
            entrypoint, cmd = _exec_form(instruction, rest), []
        elif instruction == "CMD":
            cmd = _exec_form(instruction, rest)
        elif instruction == "WORKDIR":
            workdir = _substitute(rest, scope)
    if args is None:
        raise DockerfileError("the Dockerfile has no FROM")
    return ImageConfig(entrypoint=entrypoint, cmd=cmd, env=env, workdir=workdir), bases
