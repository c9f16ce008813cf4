"""Suite-wide guards: a test that leaks threads, tasks or child processes fails."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest


def _children() -> set[int]:
    """Live (non-zombie) child processes of this process, from /proc."""
    me = os.getpid()
    kids: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            kids.add(int(entry))
    return kids


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    threads_before = {t.ident for t in threading.enumerate()}
    kids_before = _children()
    yield
    leaked_threads = [
        t
        for t in threading.enumerate()
        if t.ident not in threads_before and t.is_alive() and not t.daemon
    ]
    # give executors a moment to wind down before calling it a leak
    for t in leaked_threads:
        t.join(timeout=2)
    leaked_threads = [t for t in leaked_threads if t.is_alive()]
    leaked_kids = _children() - kids_before
    assert not leaked_threads, f"test leaked threads: {[t.name for t in leaked_threads]}"
    assert not leaked_kids, f"test leaked child processes: {sorted(leaked_kids)}"
