"""The stop deadline: a hung orderly stop still ends, and says what hung."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

# A process that installs the watchdog like ``ldt agent run`` does, then stops
# the way the scenario says: cleanly, or with a task that ignores cancellation,
# or with the event loop blocked in a thread join.
_SCRIPT = textwrap.dedent(
    """
    import asyncio, logging, signal, sys, threading, time
    from ldt.agent.stop_watchdog import StopWatchdog

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    scenario = sys.argv[1]

    async def stubborn():
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue  # the bug the watchdog exists for

    async def main():
        stop = asyncio.Event()
        dog = StopWatchdog(stop, deadline_s=2.0)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, dog.signalled)
        if scenario == "clean":
            print("ready", flush=True)
            await stop.wait()
            return
        task = asyncio.create_task(stubborn(), name="stubborn-driver")
        print("ready", flush=True)
        await stop.wait()
        if scenario == "blocked":
            t = threading.Thread(target=time.sleep, args=(3600,), name="stuck-io")
            t.start()
            t.join()  # blocks the event loop itself
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    print("exited cleanly", flush=True)
    """
)


def _start(scenario: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, scenario],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_clean_stop_exits_zero_at_once() -> None:
    proc = _start("clean")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "exited cleanly" in out


@pytest.mark.parametrize("scenario", ["stubborn", "blocked"])
def test_hung_stop_is_reported_and_ends_at_the_deadline(scenario: str) -> None:
    proc = _start(scenario)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 1
    assert "exited cleanly" not in out
    assert 1.5 <= elapsed < 10.0
    # every thread's Python stack, from faulthandler
    assert "most recent call first" in err
    if scenario == "stubborn":
        # the loop still ran: the pending task was named, with where it waits
        assert "task stubborn-driver still pending at stubborn" in err
    else:
        assert "stuck-io" in err or "join" in err


def test_second_signal_exits_at_once_with_the_stacks() -> None:
    proc = _start("stubborn")
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 1
    assert time.monotonic() - t0 < 1.5
    assert "second stop signal" in err
    assert "task stubborn-driver still pending" in err
    assert "most recent call first" in err
