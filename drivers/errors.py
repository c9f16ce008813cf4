"""The root exception of the driver layer."""

__all__ = ["DriverError"]


class DriverError(Exception):
    """A driver failed to talk to its device; the message says what and what to check.

    Third-party protocol exceptions are translated into this at the driver's
    boundary (``raise DriverError(...) from exc``).
    """
