"""Cloud Storage JSON API v1 (legacy error format), and Google's storage-testbench retry-test
API next to it.

- :mod:`.buckets` (buckets, bucket IAM, legacy ACLs) and :mod:`.objects` (objects and their
  generations, upload sessions): the backends, state and behaviour, no HTTP; :mod:`.model`
  what they share (store kinds, timestamps, generations, refused fields);
- :mod:`.handlers`: the routes: parse, call the backend, render;
- :mod:`.preconditions` (generation / metageneration / etag conditions, etags),
  :mod:`.listing` (the objects.list walk and its filters), :mod:`.errors` (typed errors);
- :mod:`.retry_test`: the testbench's ``/retry_test`` resource and ``x-retry-test-id`` faults.

Behaviour copied from Google: bucket names are global across projects (409 "you already own
it" for the same project, "not available" for another); locations come back upper-case;
uniform bucket-level access mirrors into ``bucketPolicyOnly`` and makes legacy ACL reads a 400;
a new bucket's policy holds the legacy project-role bindings; ``PATCH`` is a JSON merge patch
(``null`` removes a label); deleting a bucket that still holds any generation is 409;
generations grow with every write and a versioned bucket keeps the noncurrent ones; objects
carry ``md5Hash`` and ``crc32c`` (base64, big-endian) and downloads an ``X-Goog-Hash`` header,
an ``ETag`` and, for a ``Range``, a 206. A field the emulator does not keep is a 400 naming it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..routing import Router
from . import handlers, mirror, retry_test
from .model import BUCKET_KIND, NONCURRENT_KIND, OBJECT_KIND, UPLOAD_KIND
from .objects import Objects

if TYPE_CHECKING:
    from ..context import Emulator

__all__ = ["BUCKET_KIND", "NONCURRENT_KIND", "OBJECT_KIND", "UPLOAD_KIND", "realize", "router"]

#: what server.py serves for this module: the JSON API and the retry-test resource
router = Router()
router.routes = [*handlers.router.routes, *retry_test.router.routes]


def realize(emu: Emulator) -> None:
    """Execution on (emulator start): a GCS FUSE directory fills with its bucket's objects when
    a volume first mounts it, and the ones mounted before catch up with the API now
    (storage/mirror.py)."""
    mounts = emu.local.mounts
    if mounts is None:
        return
    mounts.syncer = lambda bucket: mirror.sync(Objects(emu), bucket)
    if mounts.root.is_dir():
        for path in sorted(mounts.root.iterdir()):
            if path.is_dir():
                mounts.syncer(path.name)
