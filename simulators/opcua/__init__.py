"""An OPC UA pumping-station simulator on asyncua's server side (never ldt's driver).

Names are imported on first use (PEP 562), so that `ldt --help` and the
CLI registration of this package never load its protocol library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ldt.simulators.opcua.certs import CertificatePair, make_certificate
    from ldt.simulators.opcua.errors import SimulatorError
    from ldt.simulators.opcua.server import APPLICATION_URI, NAMESPACE_URI, OpcUaSimulator

__all__ = [
    "APPLICATION_URI",
    "NAMESPACE_URI",
    "CertificatePair",
    "OpcUaSimulator",
    "SimulatorError",
    "make_certificate",
]

_WHERE = {
    "CertificatePair": "ldt.simulators.opcua.certs",
    "make_certificate": "ldt.simulators.opcua.certs",
    "SimulatorError": "ldt.simulators.opcua.errors",
    "APPLICATION_URI": "ldt.simulators.opcua.server",
    "NAMESPACE_URI": "ldt.simulators.opcua.server",
    "OpcUaSimulator": "ldt.simulators.opcua.server",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
