"""Stopping tasks whose cancellation a library swallowed.

``Task.cancel()`` is delivered once. Python 3.11's ``asyncio.wait_for`` (used inside
pymodbus, aiomqtt and asyncua) loses it when the awaited call finishes in the same loop
turn, and some libraries turn a cancellation into their own "disconnected" error: the
task's reconnect loop then carries on, and a single ``cancel()`` never stops it (an agent
that ignores SIGTERM, a benchmark that never ends). ``Task.cancelling()`` cannot tell
this apart, since libraries also leave it raised after cancellations of their own, so
the owner that wants a task gone asks again until it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], *, again_s: float = 0.5) -> None:
    """Cancel ``tasks`` and wait until every one has ended, cancelling again each ``again_s``.

    Results and exceptions of the tasks are not raised here (the caller looks at them if
    it cares). Waits as long as it takes: bound it from outside (the agent's stop deadline).
    """
    pending = {t for t in tasks if not t.done()}
    for task in pending:
        task.cancel()
    while pending:
        _, pending = await asyncio.wait(pending, timeout=again_s)
        for task in pending:
            task.cancel()  # the first one was swallowed: ask again
