"""A deadline on the agent's orderly stop, and what it shows when the deadline is missed.

SIGTERM starts an orderly stop (pollers cancelled, queued readings committed,
uplink stopped). If something hangs there (a driver that ignores cancellation,
a blocked thread), the process must still end, and the operator must learn
what hung: systemd would SIGKILL it silently after ``TimeoutStopSec`` (30 s in
deploy/systemd/ldt-agent.service). So:

- shortly before the deadline, while the event loop still runs, every pending
  asyncio task is logged with its stack;
- at the deadline, ``faulthandler`` (a C thread, so it works even when the
  event loop itself is blocked) writes every thread's Python stack to stderr
  and exits the process with status 1;
- a second SIGTERM/SIGINT does the same at once (the usual "press Ctrl-C
  twice").

A forced exit loses nothing acknowledged: the buffer commits atomically, so
only readings still queued in memory (never acknowledged to anyone) are lost.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import sys

__all__ = ["STOP_DEADLINE_S", "StopWatchdog"]

_log = logging.getLogger("ldt.agent")

STOP_DEADLINE_S = 25.0
"""Under systemd's TimeoutStopSec (30 s), so our stack dump comes before its SIGKILL."""

_TASK_REPORT_LEAD_S = 5.0


class StopWatchdog:
    """Call ``signalled()`` from the stop signal handler; it sets ``stop`` the first time."""

    def __init__(self, stop: asyncio.Event, *, deadline_s: float = STOP_DEADLINE_S) -> None:
        self._stop = stop
        self._deadline_s = deadline_s

    def signalled(self) -> None:
        """First signal: orderly stop under a deadline. Second one: dump stacks and exit now."""
        if self._stop.is_set():
            _log.error("second stop signal: exiting without finishing the orderly stop")
            self._report_tasks()
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            logging.shutdown()  # flush the log handlers: os._exit skips them
            os._exit(1)
        self._stop.set()
        faulthandler.dump_traceback_later(self._deadline_s, exit=True, file=sys.stderr)
        loop = asyncio.get_running_loop()
        loop.call_later(max(0.0, self._deadline_s - _TASK_REPORT_LEAD_S), self._late)

    def _late(self) -> None:
        _log.error(
            "the orderly stop is still running after %.0f s; exiting at %.0f s",
            self._deadline_s - _TASK_REPORT_LEAD_S,
            self._deadline_s,
        )
        self._report_tasks()

    @staticmethod
    def _report_tasks() -> None:
        """Log each pending asyncio task with where it waits (only callable on the loop)."""
        try:
            tasks = asyncio.all_tasks()
        except RuntimeError:  # no running loop
            return
        for task in tasks:
            frames = task.get_stack(limit=8)
            where = " <- ".join(
                f"{f.f_code.co_name} ({f.f_code.co_filename}:{f.f_lineno})" for f in frames
            )
            _log.error("stop: task %s still pending at %s", task.get_name(), where or "?")
