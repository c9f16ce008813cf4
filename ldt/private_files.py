"""Writing secrets (private keys, certificates) to disk: owner-only from the first byte."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_private"]


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600, fsynced.

    The temporary file is created 0600 (never chmod-ed after: there is no moment in
    which another user could open it) and renamed over ``path``, so a power cut leaves
    the old file or the new one, never half a key.
    """
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
