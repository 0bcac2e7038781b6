"""The output id of a source object, as s3-processor derives it (`output_id` in
functions/s3-processor/src/lib.rs, `etl output-id`): the file name's source id, cut to
leave room, then `-` and the FNV-1a 64 hash of `bucket/key` as 16 hex digits. Both engines
write a source's files under this id, so either one's run replaces the other's.
"""

from __future__ import annotations

import re

# pipeline::MAX_SOURCE_ID_BYTES: file names are `<id>.parquet`.
MAX_SOURCE_ID_BYTES = 200
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3


def fnv1a64(data: bytes) -> int:
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def source_id(text: str) -> str:
    """Every character but ASCII letters, digits, `.`, `-` and `_` becomes `_` (one per
    character, as Rust's chars()), then `_` trimmed at both ends."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text).strip("_")


def output_id(bucket: str, key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    # ASCII only, so any cut is a character boundary; the hash stays whole and last.
    stem = source_id(name)[: MAX_SOURCE_ID_BYTES - 17]
    return f"{stem}-{fnv1a64(f'{bucket}/{key}'.encode()):016x}"
