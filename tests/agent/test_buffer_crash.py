"""kill -9 in the middle of appends: every seq reported committed is there exactly once.

A child process appends in a loop and prints each committed seq range only
after ``append`` returned. The test kills it at random moments several times,
then reopens the file and checks the promise the buffer makes to its callers.
Set LDT_LONG=1 for more cycles.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ldt.agent.buffer import Buffer

_CHILD = r"""
import sys
from pathlib import Path
from ldt.agent.buffer import Buffer
from ldt.contract import SeriesInfo
from ldt.reading import Quality

buf = Buffer(path=Path(sys.argv[1]), max_bytes=1 << 30, max_age_s=1e9)
buf.open()
sid = buf.series_id(SeriesInfo(entity_id="urn:x:crash", entity_type="Device", attr="v"))
n = 0
while True:
    size = 1 + n % 97
    rows = [(sid, n + i, float(n + i), Quality.GOOD, None) for i in range(size)]
    seqs = buf.append(rows)
    sys.stdout.write(f"C {seqs.start} {seqs.stop - 1}\n")
    if n % 7 == 0:  # acks and prunes happen in flight too; say so before acking
        sys.stdout.write(f"A {seqs.start}\n")
        sys.stdout.flush()
        buf.ack([seqs.start])
    sys.stdout.flush()
    if n % 50 == 0:
        buf.enforce_limits(now_ms=0)
    n += size
"""


def _run_and_kill(path: Path, rng: random.Random) -> tuple[list[tuple[int, int]], set[int]]:
    """Run the child until a random moment; (committed ranges, seqs it meant to ack)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "child never committed anything"
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err.decode()
    ranges: list[tuple[int, int]] = []
    acking: set[int] = set()
    for line in out.decode().split("\n")[:-1]:  # the last piece may be cut mid-line
        kind, *nums = line.split()
        if kind == "C":
            ranges.append((int(nums[0]), int(nums[1])))
        else:
            acking.add(int(nums[0]))
    return ranges, acking


@pytest.mark.integration
@pytest.mark.slow
def test_kill_9_never_loses_a_committed_reading(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    rng = random.Random()
    cycles = 20 if os.environ.get("LDT_LONG") == "1" else 5
    committed: list[tuple[int, int]] = []
    acking: set[int] = set()
    for _ in range(cycles):
        got, acks = _run_and_kill(path, rng)
        acking |= acks
        assert got, "the child printed no committed range"
        if committed:  # seqs continue above everything assigned before the crash
            assert got[0][0] > committed[-1][1]
        committed.extend(got)
    with Buffer(path=path, max_bytes=1 << 30, max_age_s=1e9) as buf:
        stats = buf.stats()
        present = [r.seq for r in buf.take_backfill(10_000_000)]
        values = {r.seq: r.value for r in buf.take_backfill(10_000_000)}
    assert present == sorted(set(present)), "duplicate or out-of-order seqs"
    printed = [s for lo, hi in committed for s in range(lo, hi + 1)]
    assert len(printed) == len(set(printed)), "a seq was handed out twice"
    # every seq printed as committed is still pending, unless the child acked it
    missing = set(printed) - set(present)
    assert missing <= acking, f"lost committed seqs: {sorted(missing - acking)[:10]}"
    assert all(type(v) is float for v in values.values())
    assert stats.last_seq >= committed[-1][1]
    assert stats.pending == len(present)
    assert stats.dropped_age == stats.dropped_full == 0
