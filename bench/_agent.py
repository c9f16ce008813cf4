"""Running ``ldt agent run`` as a child process in a benchmark, and stopping it checked."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

__all__ = ["start_agent", "stop_agent"]


def start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """The agent on ``config``, its stderr (logs, stack dumps) going to ``log``."""
    with log.open("w") as fh:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "ldt", "agent", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=fh,
        )


def stop_agent(agent: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM, then wait for the orderly stop; a failed one is an error, shown with its log.

    The agent ends itself 25 s after SIGTERM at the latest, writing every
    task's and thread's stack to its log (agent/stop_watchdog.py).
    """
    agent.send_signal(signal.SIGTERM)
    try:
        code = agent.wait(timeout=40)
    except subprocess.TimeoutExpired:
        agent.kill()
        agent.wait()
        code = None
    if code != 0:
        tail = log.read_text(errors="replace")[-12_000:]
        raise RuntimeError(f"the agent did not stop cleanly (exit {code}); its log ends:\n{tail}")
