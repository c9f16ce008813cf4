"""The OPC UA simulator's one root exception."""

from __future__ import annotations

__all__ = ["SimulatorError"]


class SimulatorError(Exception):
    """The simulator cannot do what was asked: busy port, unknown node, bad status name.

    The message is one sentence a user can act on; the CLI prints it as is.
    """
