"""An OPC UA pumping-station simulator on asyncua's server side (never ldt's driver)."""

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
