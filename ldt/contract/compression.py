"""Sync batch compression: gzip on the wire, decompressed by the cloud under a size limit.

Why gzip and not zstd: it is in the standard library on both sides (zstd needs a
compiled package on every gateway until Python 3.14), and on these batches of
repeated keys and similar numbers it already removes most of the bytes (figures in
the README, ``bench/sync.py``). The cloud bounds the *decompressed* size, so a small
"zip bomb" cannot make it allocate gigabytes.
"""

from __future__ import annotations

import gzip
import zlib

__all__ = ["CompressionError", "gunzip_limited", "gzip_batch"]

LEVEL = 6


class CompressionError(ValueError):
    """Not gzip, truncated, or larger than allowed once decompressed."""


def gzip_batch(body: bytes) -> bytes:
    """The batch as sent with ``Content-Encoding: gzip`` (mtime 0: same bytes, same body)."""
    return gzip.compress(body, compresslevel=LEVEL, mtime=0)


def gunzip_limited(data: bytes, *, limit: int) -> bytes:
    """Decompress ``data``; ``CompressionError`` if it is not one whole gzip member or if
    the result would exceed ``limit`` bytes (checked while decompressing)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise CompressionError(f"the body is not valid gzip: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise CompressionError(f"the body is larger than {limit} bytes once decompressed")
    if not inflater.eof:
        raise CompressionError("the gzip body is truncated")
    if inflater.unused_data:
        raise CompressionError("data after the end of the gzip body")
    return out
