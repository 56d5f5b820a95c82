"""What Cloud Storage's backends share: the store kinds, timestamps, generations, and the rule
that a field the emulator does not keep is refused.

Documents in the store: a bucket under ``BUCKET_KIND`` by name; the live generation of an
object under ``OBJECT_KIND`` at ``{bucket}/{name}`` (Cloud Build reads its sources there);
noncurrent generations (kept when the bucket's versioning is on) under ``NONCURRENT_KIND`` at
``{bucket}/{name}#{generation:020d}``, with ``timeDeleted``. Fields starting with ``_`` are
internal (the object's bytes, the bucket's project) and never rendered.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .errors import Invalid

if TYPE_CHECKING:
    from ..context import Emulator

BUCKET_KIND = "storage.bucket"
OBJECT_KIND = "storage.object"
NONCURRENT_KIND = "storage.object.noncurrent"
UPLOAD_KIND = "storage.upload"
META_KIND = "storage.meta"

#: fields only the server sets: sent back by a client (a read-modify-write), they are ignored,
#: as Google ignores output-only fields
_OUTPUT_ONLY = frozenset(
    {
        "kind",
        "id",
        "selfLink",
        "mediaLink",
        "bucket",
        "etag",
        "generation",
        "metageneration",
        "projectNumber",
        "timeCreated",
        "updated",
        "timeFinalized",
        "timeStorageClassUpdated",
        "timeDeleted",
        "locationType",
        "size",
    }
)


def refuse_unmodelled(body: dict[str, Any], modelled: frozenset[str], what: str) -> None:
    """A field the emulator does not keep is a 400 naming it, never silently dropped."""
    for key in sorted(body):
        if key not in modelled and key not in _OUTPUT_ONLY:
            raise Invalid(
                f"The djdeploy emulator does not model the {what} field '{key}': remove it "
                "from the request (the emulator would otherwise drop it)."
            )


def timestamp(t: float) -> str:
    """GCS timestamps: RFC 3339, milliseconds, 'Z'."""
    d = datetime.fromtimestamp(t, tz=UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def next_generation(emu: Emulator) -> int:
    """Microseconds since the epoch, strictly increasing (as GCS generations are)."""
    with emu.store.transaction():
        last = (emu.store.get(META_KIND, "generation") or {}).get("value", 0)
        gen = max(int(emu.clock() * 1e6), int(last) + 1)
        emu.store.put(META_KIND, "generation", {"value": gen})
    return gen
