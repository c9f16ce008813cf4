"""Structured logs for agent and cloud: one JSON object per line, or readable text.

Gateways ship their logs to journald and from there to whatever the city
uses; JSON lines keep the fields (device, reason, counters) machine-readable.
Fields passed with ``extra={...}`` become top-level keys.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Literal

import orjson

__all__ = ["configure_logging"]

_STD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = f"{time.strftime('%H:%M:%S', time.localtime(record.created))} "
        base += f"{record.levelname.lower():7} {record.name}: {record.getMessage()}"
        fields = [
            f"{k}={v}"
            for k, v in vars(record).items()
            if k not in _STD_ATTRS and not k.startswith("_")
        ]
        if fields:
            base += " " + " ".join(fields)
        if record.exc_info:
            base += "\n" + self.formatException(record.exc_info)
        return base


def configure_logging(
    *, level: int | str = logging.INFO, fmt: Literal["json", "text"] = "json"
) -> None:
    """Send ``ldt.*`` logs to stderr in the chosen format (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # pymodbus logs every failed connect at ERROR; our drivers report those as readings
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.getLogger("httpx").setLevel(logging.WARNING)
