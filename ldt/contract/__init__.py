"""What crosses the wire between edge and cloud; both sides import this, nothing else.

Kept small and versioned: a gateway in a cabinet may run an older release than
the cloud for years, so a change here is a protocol change (bump ``WIRE_VERSION``).
Optional fields (``IngestBatch.status``, ``SeriesInfo.provenance``) are the exception:
old gateways omit them; the cloud is upgraded before its gateways. Edge control has its
own modules (``control``: the exchange; ``rules``: rule sets; ``artifacts``: signatures).
"""

from ldt.contract.batch import (
    INGEST_PATH,
    WIRE_VERSION,
    BatchAck,
    GatewayStatus,
    IngestBatch,
    SeriesInfo,
    WireReading,
    WireValue,
    wire_value,
)

__all__ = [
    "INGEST_PATH",
    "WIRE_VERSION",
    "BatchAck",
    "GatewayStatus",
    "IngestBatch",
    "SeriesInfo",
    "WireReading",
    "WireValue",
    "wire_value",
]
