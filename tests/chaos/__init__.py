"""Fault injection against real processes (issue 17); see docs/reliability.md."""
