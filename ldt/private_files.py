"""Secrets on disk (private keys, tokens, databases): owner-only from the first byte.

- ``write_private``: atomic, 0600, fsynced, and never through a symlink an attacker planted
  (``O_EXCL | O_NOFOLLOW`` on the temporary file);
- ``check_private``: a secret readable by group or others is logged and tightened to 0600
  at start (ssh refuses such keys; a gateway in a street cabinet must come back up, so it
  repairs and says so);
- ``kept_secret``: a random secret made once and kept (the gateway's generated local API
  token, its pseudonym key);
- ``create_private``: an empty 0600 file, for databases created by a library (SQLite
  gives its journal and WAL files the database file's mode).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

__all__ = ["check_private", "create_private", "kept_secret", "write_atomic", "write_private"]

_log = logging.getLogger("ldt.private_files")


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600, fsynced.

    The temporary file is created 0600 with ``O_EXCL | O_NOFOLLOW`` (never chmod-ed after:
    there is no moment in which another user could open it, and a symlink planted under its
    name is not followed) and renamed over ``path``, so a power cut leaves the old file or
    the new one, never half a key.
    """
    write_atomic(path, data, mode=0o600)


def write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """``write_private`` with another mode: for files another service reads and nobody
    may plant or half-write (mosquitto's CRL and ACL, mode 0644)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a leftover of a crash (or a planted link: unlinked, not followed)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # the umask narrowed it
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def check_private(path: Path) -> bool:
    """Whether ``path`` (if it exists) was private; a file others can read is made 0600 and
    logged. A symlink is refused (``OSError``): a secret is a regular file of its own."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return True
    if stat.S_ISLNK(info.st_mode):
        raise OSError(f"{path} is a symbolic link; a secret must be a regular file")
    if info.st_mode & 0o077:
        _log.warning(
            "secret file readable by others: made 0600",
            extra={"path": str(path), "mode": oct(info.st_mode & 0o777)},
        )
        os.chmod(path, 0o600)
        return False
    return True


def kept_secret(path: Path, make: Callable[[], bytes], usable: Callable[[bytes], bool]) -> bytes:
    """The secret in ``path``; made with ``make`` and written 0600 when the file is missing
    or not ``usable``. The file is checked first (``check_private``)."""
    check_private(path)
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        secret = b""
    if not usable(secret):
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = make()
        write_private(path, secret)
    return secret


def create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (then only ``check_private``)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        check_private(path)
        return
    os.close(fd)
