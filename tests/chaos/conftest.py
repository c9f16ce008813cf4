"""The chaos suite runs the same real processes as the integration suite: its fixtures."""

from tests.integration.conftest import agent_process, sims, token_for

__all__ = ["agent_process", "sims", "token_for"]
