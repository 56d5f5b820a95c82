"""The deterministic source archive Cloud Build builds the image from.

    build_archive(source, container_dir, config_file=None) -> Archive(data, digest, tag)
    LazyArchive(source, container_dir, config_file=None)
        the same, built when first needed: ``digest`` and ``tag`` read the files without
        compressing, ``data`` (the tar.gz) only when asked for (an upload)

A gzipped tar of the user's Django project at the root and djdeploy's container files
(Dockerfile, entrypoint.sh, install-requirements.sh, requirements.txt, djdeploy_runtime/) under
``.djdeploy/``, the layout container/Dockerfile expects
(``docker build -f .djdeploy/Dockerfile .``).

Deterministic: entries sorted by path, mtime 0, uid/gid 0, no user or group names, modes
normalised (directories and executables 0755, other files 0644), gzip header mtime 0 and no
file name. The same tree gives the same bytes; a change of one byte in any file, a file name or
an executable bit gives another digest, hence another image tag: the tag *is* the content.

``digest`` is the sha256 of the uncompressed tar stream, so the tag does not change with the
zlib version that compresses it; ``data`` is the gzipped stream that is uploaded.

Excluded from the project: version-control and tool directories, virtualenvs, bytecode,
node_modules, local ``.env`` files (they usually hold secrets), ``djdeploy.toml`` (the
deployer's config: the container never reads it, so a change that matters only to the deployer,
a schedule or a memory size, builds no new image), and for the same reason the config file
the deployment was read from (``config_file``, ``--config deploy/prod.toml``) when it lies in
the project, whatever its name (but a ``pyproject.toml``: the build may read its
dependencies); at the root, ``media/`` (user uploads never go into an image; kept when it is a
Python package, an app named media), ``db.sqlite3`` (a development database), ``.djdeploy/``
(ours), ``.github/`` (CI workflows); and whatever the project's ``.gcloudignore`` or
``.dockerignore`` excludes (simple patterns: ``name``, ``dir/``, ``path/glob*``, ``**``,
``!negation``; the last matching line wins). The two ignore files themselves are applied here
and not shipped: ``docker build`` would apply a root .dockerignore a second time, to the context
that holds ``.djdeploy/`` (a ``.*`` line would drop it).

Every ``pyproject.toml`` ships without its ``[tool.djdeploy]`` table (the deployer's config
again), cut from the text by tomledit so the rest is byte for byte the user's; when the cut is
not exact (the rest would not read as the same data) the file ships as it is. The digest is
that of what is shipped.

Pure standard library: no google import.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import os
import stat
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from deployer.errors import ConfigError
from deployer.tomledit import without_table

#: directory of djdeploy's container files inside the archive
CONTAINER_PREFIX = ".djdeploy"
#: what goes from container_dir into .djdeploy/ (the sample project stays out)
CONTAINER_EXCLUDE = frozenset({"sample"})
#: a config file of this name is kept when it is the deployment's (the build reads its
#: dependencies), but every one ships without the deployer's table (DJDEPLOY_TABLE)
PYPROJECT = "pyproject.toml"
DJDEPLOY_TABLE = ("tool", "djdeploy")

#: names excluded anywhere in the tree (file or directory)
EXCLUDED_NAMES = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        ".venv",
        "venv",
        "node_modules",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".DS_Store",
        ".env",
    }
)
#: file name patterns excluded anywhere: bytecode, and djdeploy's own config (read by the
#: deployer, never by the container: a new [[cron]] schedule or memory size is no new image)
EXCLUDED_GLOBS = ("*.pyc", "*.pyo", "djdeploy.toml")
IGNORE_FILES = (".gcloudignore", ".dockerignore")
#: paths excluded at the project root only. The ignore files are applied here, not shipped: a
#: .dockerignore in the build context would be applied again by ``docker build``, and a common
#: ``.*`` line there would drop .djdeploy/ from the context. A local SQLite database (and its
#: journal files) is development data, never part of an image; ``.github/`` (workflows, the one
#: `djdeploy ci github-actions` writes among them) is read by GitHub, never by the app.
EXCLUDED_ROOT = frozenset(
    {
        CONTAINER_PREFIX,
        ".github",
        *IGNORE_FILES,
        "db.sqlite3",
        "db.sqlite3-journal",
        "db.sqlite3-wal",
        "db.sqlite3-shm",
    }
)
#: the project's uploads directory, excluded at the root unless it is a Python package (an app
#: named ``media``, with an __init__.py)
MEDIA_DIR = "media"
GZIP_LEVEL = 6


@dataclass(frozen=True)
class Archive:
    """The archive's bytes (tar.gz), the sha256 of its tar stream and the image tag."""

    data: bytes
    digest: str
    tag: str

    @property
    def object_name(self) -> str:
        """Where it is uploaded in the staging bucket."""
        return f"sources/{self.tag}.tar.gz"

    def __repr__(self) -> str:
        return f"Archive(tag={self.tag!r}, {len(self.data)} bytes)"


def tag_for(digest: str) -> str:
    return f"src-{digest[:16]}"


# -- ignore files --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    pattern: str
    negate: bool
    dir_only: bool
    anchored: bool  # contains a slash: matched against the path from the root


def _parse_ignore(text: str, base: Path) -> list[_Rule]:
    rules: list[_Rule] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#!include:"):
            included = base / line.split(":", 1)[1].strip()
            if included.is_file():
                rules += _parse_ignore(included.read_text(errors="replace"), base)
            continue
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate:
            line = line[1:].strip()
        dir_only = line.endswith("/")
        line = line.strip("/")
        if line.startswith("./"):
            line = line[2:]
        if not line:
            continue
        rules.append(_Rule(line, negate, dir_only, "/" in line))
    return rules


def load_ignore_rules(source: Path) -> list[_Rule]:
    """The rules of the project's .gcloudignore and .dockerignore (both, in that order)."""
    rules: list[_Rule] = []
    for name in IGNORE_FILES:
        path = source / name
        if path.is_file():
            rules += _parse_ignore(path.read_text(errors="replace"), source)
    return rules


def _ignored(rel: str, is_dir: bool, rules: list[_Rule]) -> bool:
    """True when the last rule matching ``rel`` (a/b/c) excludes it."""
    result = False
    name = rel.rsplit("/", 1)[-1]
    for r in rules:
        if r.dir_only and not is_dir:
            continue
        if r.anchored:
            hit = fnmatch.fnmatchcase(rel, r.pattern) or fnmatch.fnmatchcase(
                rel, r.pattern.replace("**/", "")
            )
        else:
            hit = fnmatch.fnmatchcase(name, r.pattern)
        if hit:
            result = not r.negate
    return result


def _excluded(rel: str, path: Path, is_dir: bool, *, root: bool) -> bool:
    name = rel.rsplit("/", 1)[-1]
    if name in EXCLUDED_NAMES:
        return True
    if root and "/" not in rel:
        if name in EXCLUDED_ROOT:
            return True
        if name == MEDIA_DIR and is_dir and not (path / "__init__.py").is_file():
            return True
    return not is_dir and any(fnmatch.fnmatchcase(name, g) for g in EXCLUDED_GLOBS)


# -- walking -------------------------------------------------------------------------------------


def _walk(
    top: Path, *, project: bool, skip: frozenset[str] = frozenset()
) -> Iterator[tuple[str, Path]]:
    """(path relative to top with '/', absolute path) for every kept entry, dirs included;
    the paths in ``skip`` (relative to top) are left out."""
    rules = load_ignore_rules(top) if project else []

    def visit(directory: Path, rel_dir: str) -> Iterator[tuple[str, Path]]:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise ConfigError(f"cannot read {directory}: {exc.strerror}") from None
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if rel in skip:
                continue
            is_dir = entry.is_dir(follow_symlinks=False)
            path = Path(entry.path)
            if _excluded(rel, path, is_dir, root=project):
                continue
            if rules and _ignored(rel, is_dir, rules):
                continue
            yield rel, path
            if is_dir:
                yield from visit(path, rel)

    yield from visit(top, "")


def _tarinfo(arcname: str, path: Path) -> tarfile.TarInfo | None:
    try:
        st = path.lstat()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    info = tarfile.TarInfo(arcname)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        info.mode = 0o777
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    elif stat.S_ISREG(st.st_mode):
        info.type = tarfile.REGTYPE
        info.size = st.st_size
        info.mode = 0o755 if st.st_mode & 0o111 else 0o644
    else:
        return None  # sockets, fifos, devices: never part of a project
    return info


class _HashingWriter(io.RawIOBase):
    """Receives the tar stream: hashes it and, when ``compress``, gzips it into a buffer, in
    one pass."""

    def __init__(self, *, compress: bool = True) -> None:
        self.sha = hashlib.sha256()
        self.buffer = io.BytesIO()
        self.gz = (
            gzip.GzipFile(
                filename="", mode="wb", fileobj=self.buffer, mtime=0, compresslevel=GZIP_LEVEL
            )
            if compress
            else None
        )

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.sha.update(b)
        if self.gz is not None:
            self.gz.write(b)
        return len(b)


def _config_in(source: Path, config_file: Path | None) -> frozenset[str]:
    """The config file's path relative to source, when it lies there and is no pyproject.toml
    (empty otherwise). Its directory is resolved as source is (by load_config), not the file:
    a config that is a symlink is the link in the project."""
    if config_file is None or config_file.name == PYPROJECT:
        return frozenset()
    file = Path(config_file).parent.resolve() / config_file.name
    try:
        return frozenset({file.relative_to(source.resolve()).as_posix()})
    except ValueError:
        return frozenset()


def _without_djdeploy(data: bytes) -> bytes:
    """A pyproject.toml as shipped: without [tool.djdeploy] when tomledit cuts it exactly (the
    rest reads as the same data), else as it is."""
    if b"djdeploy" not in data:
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    return without_table(text, DJDEPLOY_TABLE).encode("utf-8")


def _write_tar(
    source: Path, container_dir: Path, out: _HashingWriter, *, config_file: Path | None
) -> None:
    """Stream the deterministic tar of ``source`` (without ``config_file`` when it lies there)
    plus ``container_dir`` into ``out``."""
    source, container_dir = Path(source), Path(container_dir)
    if not source.is_dir():
        raise ConfigError(f'source "{source}" is not a directory')
    if not (container_dir / "Dockerfile").is_file():
        raise ConfigError(
            f"{container_dir} has no Dockerfile: djdeploy's container files are missing"
        )
    entries = list(_walk(source, project=True, skip=_config_in(source, config_file)))
    entries.append((CONTAINER_PREFIX, container_dir))
    entries += [
        (f"{CONTAINER_PREFIX}/{rel}", path)
        for rel, path in _walk(container_dir, project=False, skip=CONTAINER_EXCLUDE)
    ]
    entries.sort(key=lambda e: e[0])

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for arcname, path in entries:
            info = _tarinfo(arcname, path)
            if info is None:
                continue
            if info.type == tarfile.REGTYPE:
                try:
                    if path.name == PYPROJECT:
                        content = _without_djdeploy(path.read_bytes())
                        info.size = len(content)
                        tar.addfile(info, io.BytesIO(content))
                        continue
                    with path.open("rb") as fh:
                        tar.addfile(info, fh)
                except OSError as exc:
                    raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
            else:
                tar.addfile(info)


def build_archive(source: Path, container_dir: Path, *, config_file: Path | None = None) -> Archive:
    """The deterministic tar.gz of ``source`` (the Django project, without ``config_file``, the
    deployment's config, when it lies there) plus ``container_dir``'s files under
    ``.djdeploy/`` (without its sample project)."""
    out = _HashingWriter()
    _write_tar(source, container_dir, out, config_file=config_file)
    if out.gz is not None:
        out.gz.close()
    digest = out.sha.hexdigest()
    return Archive(data=out.buffer.getvalue(), digest=digest, tag=tag_for(digest))


def archive_digest(source: Path, container_dir: Path, *, config_file: Path | None = None) -> str:
    """``build_archive(...).digest`` without compressing (or keeping) the archive."""
    out = _HashingWriter(compress=False)
    _write_tar(source, container_dir, out, config_file=config_file)
    return out.sha.hexdigest()


class LazyArchive:
    """The archive of ``source``, built when first needed. ``digest``, ``tag`` and
    ``object_name`` read the files once (without compressing); ``data`` builds the tar.gz on
    first use and refuses it when the files changed since the digest was taken (the tag would
    not say what is in it)."""

    def __init__(
        self, source: Path, container_dir: Path, *, config_file: Path | None = None
    ) -> None:
        self.source = Path(source)
        self.container_dir = Path(container_dir)
        self.config_file = config_file
        self._lock = threading.Lock()
        self._built: Archive | None = None

    @cached_property
    def digest(self) -> str:
        return archive_digest(self.source, self.container_dir, config_file=self.config_file)

    @property
    def tag(self) -> str:
        return tag_for(self.digest)

    @property
    def object_name(self) -> str:
        return f"sources/{self.tag}.tar.gz"

    @property
    def built(self) -> bool:
        """Whether the tar.gz has been built (``data`` asked for)."""
        return self._built is not None

    @property
    def data(self) -> bytes:
        with self._lock:
            if self._built is None:
                archive = build_archive(
                    self.source, self.container_dir, config_file=self.config_file
                )
                if archive.digest != self.digest:
                    raise ConfigError(
                        f"the files under {self.source} changed while deploying (image tag "
                        f"{self.tag}, now {archive.tag}): run up again"
                    )
                self._built = archive
            return self._built.data

    def __repr__(self) -> str:
        return f"LazyArchive({str(self.source)!r})"


def container_dir() -> Path:
    """djdeploy's container/ directory: next to the package in a checkout, else the installed
    ``djdeploy_container`` package data."""
    here = Path(__file__).resolve().parent
    candidate = here.parent / "container"
    if (candidate / "Dockerfile").is_file():
        return candidate
    import importlib.util

    try:
        spec = importlib.util.find_spec("djdeploy_container")
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        installed = Path(location)
        if (installed / "Dockerfile").is_file():
            return installed
    raise ConfigError(
        "djdeploy's container files (Dockerfile, djdeploy_runtime/) are not installed: "
        "reinstall djdeploy"
    )


def default_source() -> Path:
    """The bundled sample project, used when config.source is None."""
    return container_dir() / "sample"
