"""Protocol adapters: each subpackage reads (and writes) one field protocol.

A driver turns a device profile plus a connection into ``ldt.reading.Reading``
objects. Drivers import nothing of ours but ``ldt.reading`` and ``ldt.drivers``
itself (enforced by import-linter in pyproject.toml).
"""

from ldt.drivers.errors import DriverError

__all__ = ["DriverError"]
