"""The cloud: an NGSI-LD context broker and the ingest endpoint gateways sync to."""
