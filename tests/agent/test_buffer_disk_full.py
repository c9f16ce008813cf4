"""A full file system (issue 17): with the default ``max_bytes`` of 1 GiB on a small file
system, the disk filled before the drop policy applied, writes failed and the agent
crash-looped. The buffer now counts the file system's free space in its budget: the
policy applies first, every append returns, and one WARNING says when it starts and stops."""

from __future__ import annotations

import logging
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ldt.agent.buffer import Buffer, BufferRow
from ldt.contract import SeriesInfo
from ldt.reading import Quality

GIB = 1 << 30


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs (as root, which CI is); skipped elsewhere."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a size-limited file system needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mnt)],
        capture_output=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, check=False)


def _records(sid: int, n: int, seed: int) -> Iterator[list[BufferRow]]:
    rng = random.Random(seed)
    for k in range(n):  # ~10 KB per record: random text does not compress much
        yield [(sid, k * 100 + i, rng.randbytes(64).hex(), Quality.GOOD, None) for i in range(100)]


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
def test_a_full_disk_applies_the_drop_policy_and_never_fails_a_write(
    small_fs: Path, policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = small_fs / "b.db"
    with (
        caplog.at_level(logging.WARNING, logger="ldt.agent.buffer"),
        Buffer(path=path, max_bytes=GIB, max_age_s=1e9, drop_policy=policy) as buf,  # type: ignore[arg-type]
    ):
        sid = buf.series_id(SeriesInfo(entity_id="urn:a:b", entity_type="T", attr="x"))
        accepted = 0
        for rows in _records(sid, 3000, 1):  # ~30 MB into 16 MiB: no append may fail
            accepted += len(buf.append(rows))
        stats = buf.stats()
        assert stats.dropped_full > 0
        assert stats.db_bytes <= 16 << 20
        if policy == "drop_oldest":
            assert accepted == 300_000  # every append was taken; the oldest went
            assert buf.take_live(1)[0].seq == stats.last_seq
        else:
            assert accepted < 300_000  # the newest were refused, the history kept
            assert buf.take_backfill(1)[0].seq == 1
            buf.ack(range(1, stats.last_seq + 1))
            buf.enforce_limits()
            assert len(buf.append(next(_records(sid, 1, 2)))) == 100  # room again
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("buffer full: ")
    assert messages.count(messages[0]) <= 2, messages  # said when it starts, not per append
    if policy == "drop_newest":
        assert "buffer has room again" in messages
