"""The edge runtime: config, supervisor, per-device pollers, buffer and uplink."""
