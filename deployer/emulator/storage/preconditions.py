"""Preconditions and etags on Cloud Storage resources, as data.

Every object method takes ``ifGenerationMatch``, ``ifGenerationNotMatch``,
``ifMetagenerationMatch`` and ``ifMetagenerationNotMatch`` (also as the XML API's
``x-goog-if-generation-match``... headers), and the etag headers ``If-Match`` /
``If-None-Match``. ``ifGenerationMatch=0`` means "only if no live object",
``ifGenerationNotMatch=0`` "only if there is one". A failed condition is
412, except on a read, where a failed *not-match* condition is 304 Not Modified (HTTP caching).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from .errors import NotModified, PreconditionFailed


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if not n:
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def etag(*, metageneration: int, generation: int | None = None) -> str:
    """GCS etags are a base64 protobuf: field 1 the generation (objects), field 2 the
    metageneration; a bucket's carries field 1 = its metageneration ("CAE=" for 1)."""
    if generation is None:
        return base64.b64encode(b"\x08" + _varint(metageneration)).decode()
    raw = b"\x08" + _varint(generation) + b"\x10" + _varint(metageneration)
    return base64.b64encode(raw).decode()


def _etags(header: str | None) -> tuple[str, ...]:
    """``"a", W/"b"`` -> ("a", "b"): entity tags compared without quotes or weakness."""
    if not header:
        return ()
    return tuple(t.strip().removeprefix("W/").strip('"') for t in header.split(",") if t.strip())


@dataclass(frozen=True)
class Conditions:
    """What a request asks to hold of the resource it reads or writes."""

    if_generation_match: int | None = None
    if_generation_not_match: int | None = None
    if_metageneration_match: int | None = None
    if_metageneration_not_match: int | None = None
    if_match: tuple[str, ...] = ()
    if_none_match: tuple[str, ...] = ()

    @classmethod
    def from_values(
        cls, values: dict[str, int | None], *, if_match: str | None, if_none_match: str | None
    ) -> Conditions:
        """From the parsed ``if*Match`` integers (query or header) and the etag headers."""
        return cls(
            if_generation_match=values.get("ifGenerationMatch"),
            if_generation_not_match=values.get("ifGenerationNotMatch"),
            if_metageneration_match=values.get("ifMetagenerationMatch"),
            if_metageneration_not_match=values.get("ifMetagenerationNotMatch"),
            if_match=_etags(if_match),
            if_none_match=_etags(if_none_match),
        )

    def check(self, current: dict[str, Any] | None, *, read: bool = False) -> None:
        """Raise PreconditionFailed (412) or, on a read, NotModified (304) when a condition
        fails against ``current`` (None: no such resource)."""
        gen = int(current["generation"]) if current else 0
        meta = int(current["metageneration"]) if current else None
        tag = current.get("etag") if current else None
        if self.if_generation_match is not None and self.if_generation_match != gen:
            raise PreconditionFailed()
        if self.if_metageneration_match is not None and self.if_metageneration_match != meta:
            raise PreconditionFailed()
        if self.if_match and (tag is None or not ({tag, "*"} & set(self.if_match))):
            raise PreconditionFailed()
        if self.if_generation_not_match is not None and current is None:
            raise PreconditionFailed()  # "not this generation" needs a live one (0: any)
        not_modified = (
            (self.if_generation_not_match is not None and self.if_generation_not_match == gen)
            or (
                self.if_metageneration_not_match is not None
                and self.if_metageneration_not_match == meta
            )
            or (tag is not None and bool({tag, "*"} & set(self.if_none_match)))
        )
        if current is not None and not_modified:
            raise NotModified() if read else PreconditionFailed()

    def stored(self) -> dict[str, Any]:
        """A JSON form, for an upload session that applies them when it completes."""
        return {
            "ifGenerationMatch": self.if_generation_match,
            "ifGenerationNotMatch": self.if_generation_not_match,
            "ifMetagenerationMatch": self.if_metageneration_match,
            "ifMetagenerationNotMatch": self.if_metageneration_not_match,
            "if_match": list(self.if_match),
            "if_none_match": list(self.if_none_match),
        }

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> Conditions:
        return cls(
            if_generation_match=data.get("ifGenerationMatch"),
            if_generation_not_match=data.get("ifGenerationNotMatch"),
            if_metageneration_match=data.get("ifMetagenerationMatch"),
            if_metageneration_not_match=data.get("ifMetagenerationNotMatch"),
            if_match=tuple(data.get("if_match") or ()),
            if_none_match=tuple(data.get("if_none_match") or ()),
        )
