"""GCS FUSE, locally: the directory a Cloud Storage volume mounts, ``<state>/buckets/<bucket>``,
whose files are the bucket's objects (docs/emulator.md, "Media (GCS FUSE)").

This side knows only files: it writes an object's bytes as a file, removes one, and scans the
tree (each file's size and modification time, each directory). The storage backend keeps the two
in step (storage/mirror.py): what the API writes appears here at once; what an app writes here
becomes an object at the next storage request on the bucket. A name that cannot be a path
(``a//b``, ``..``, a file where a directory is needed) stays an object only, as GCS FUSE hides
such names too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BUCKETS = "buckets"
TEMP_PREFIX = ".djdeploy-tmp-"  # a file being written by the mirror: never an object

#: a file's (size, modification time in ns): what tells the mirror that the file changed
Stat = tuple[int, int]


@dataclass
class Scan:
    """A mounted bucket's tree: every file by object name, every directory (``a/b/``)."""

    files: dict[str, Stat] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    empty_dirs: set[str] = field(default_factory=set)


class Mounts:
    """The bucket directories under ``root`` (``<state>/buckets``). ``syncer`` (set by the
    storage backend when execution starts) brings a bucket's directory and objects into step;
    :meth:`mount` runs it, so a volume shows the bucket's objects from the start."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.syncer: Callable[[str], None] | None = None

    def mount(self, bucket: str) -> Path:
        """The bucket's directory, made (and filled with its objects) on first use."""
        path = self.root / bucket
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            if self.syncer is not None:
                self.syncer(bucket)
        return path

    def mounted(self, bucket: str) -> Path | None:
        """The bucket's directory when some volume mounted it, else None (API only)."""
        path = self.root / bucket
        return path if path.is_dir() else None

    def remove_all(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    # -- files ---------------------------------------------------------------------------------

    @staticmethod
    def path_of(root: Path, name: str) -> Path | None:
        """Where object ``name`` lives under ``root``; None when it cannot be a path."""
        parts = name.rstrip("/").split("/")
        if not name or name.startswith("/") or "\0" in name:
            return None
        if any(p in ("", ".", "..") or p.startswith(TEMP_PREFIX) for p in parts):
            return None
        return root.joinpath(*parts)

    def write(self, root: Path, name: str, data: bytes, *, mtime: float) -> Stat | None:
        """Object ``name`` as a file (``a/`` as a directory), atomically; its stat, or None when
        the name cannot be a path here."""
        path = self.path_of(root, name)
        if path is None:
            return None
        try:
            if name.endswith("/"):
                path.mkdir(parents=True, exist_ok=True)
                return (0, 0)
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                return None  # a directory of the same name wins, as in GCS FUSE
            tmp = path.parent / f"{TEMP_PREFIX}{path.name}"
            tmp.write_bytes(data)
            os.utime(tmp, (mtime, mtime))
            tmp.replace(path)
            st = path.stat()
        except (NotADirectoryError, FileExistsError):
            return None  # a file where a directory is needed
        return (st.st_size, st.st_mtime_ns)

    def remove(self, root: Path, name: str, *, keep: set[str]) -> None:
        """Remove object ``name``'s file (or empty directory), then each parent directory left
        empty that is not in ``keep`` (the placeholder objects, ``a/``), as GCS FUSE's implicit
        directories vanish with their last object."""
        path = self.path_of(root, name)
        if path is None:
            return
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError, OSError):
            if name.endswith("/"):
                path.rmdir()
            elif path.is_file() or path.is_symlink():
                path.unlink()
        parent = path.parent
        while parent != root and root in parent.parents:
            rel = parent.relative_to(root).as_posix() + "/"
            if rel in keep:
                break
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    @staticmethod
    def read(root: Path, name: str) -> bytes | None:
        path = Mounts.path_of(root, name)
        try:
            return path.read_bytes() if path is not None else None
        except OSError:
            return None

    @staticmethod
    def scan(root: Path) -> Scan:
        out = Scan()
        for here, dirnames, filenames in os.walk(root):
            rel = Path(here).relative_to(root).as_posix()
            prefix = "" if rel == "." else rel + "/"
            if prefix:
                out.dirs.add(prefix)
                if not dirnames and not filenames:
                    out.empty_dirs.add(prefix)
            for f in filenames:
                if f.startswith(TEMP_PREFIX):
                    continue
                try:
                    st = os.stat(os.path.join(here, f))
                except OSError:
                    continue
                out.files[prefix + f] = (st.st_size, st.st_mtime_ns)
        return out
