"""ldt: an edge-to-cloud gateway and agent runtime for city Local Digital Twins.

The import root maps the repository's top-level folders: ``ldt.agent`` (edge
runtime), ``ldt.drivers`` (protocol adapters), ``ldt.cloud`` (NGSI-LD broker),
``ldt.simulators`` (device simulators). ``ldt.reading`` and ``ldt.contract``
are the only modules both halves share.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
