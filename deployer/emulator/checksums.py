"""Checksums as Google's APIs carry them: CRC32C (Castagnoli) and MD5.

Storage answers both base64-encoded big-endian (``crc32c``, ``md5Hash``, ``X-Goog-Hash``); Secret
Manager carries the CRC32C as a decimal int64 (``dataCrc32c``). google-crc32c (a dependency of
google-cloud-storage) computes it in C.
"""

from __future__ import annotations

import base64
import hashlib

import google_crc32c


def crc32c(data: bytes) -> int:
    return int(google_crc32c.value(data))


def storage_hashes(data: bytes) -> tuple[str, str]:
    """(md5Hash, crc32c) in Cloud Storage's base64 form."""
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    crc = base64.b64encode(crc32c(data).to_bytes(4, "big")).decode()
    return md5, crc
