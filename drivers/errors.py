"""The root exception of the driver layer, and the one kind a caller may retry."""

__all__ = ["DeviceUnreachableError", "DriverError"]


class DriverError(Exception):
    """A driver failed to talk to its device; the message says what and what to check.

    Third-party protocol exceptions are translated into this at the driver's
    boundary (``raise DriverError(...) from exc``).
    """


class DeviceUnreachableError(DriverError):
    """The device could not be reached (connection refused, no answer, link lost), so it
    neither took nor refused the request. A write (which sets a value, so repeating it is
    harmless) may be tried again when the device is back; a refusal (an exception code, a
    Bad status, a value that does not fit) is a plain ``DriverError`` and is final.
    """
