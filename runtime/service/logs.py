"""The runtime's log lines: one JSON object per line for the daemon (journald, log shippers), or
plain text for a person at a terminal. Every record's ``extra`` fields (``event``, ``fps``, ...)
become keys of the JSON object.
"""
from __future__ import annotations

import json
import logging
import sys
import time

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC ISO 8601), level, logger, event, msg and the extras."""

    def format(self, record: logging.LogRecord) -> str:
        data = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                "level": record.levelname.lower(), "logger": record.name, "event": getattr(record, "event", "log"),
                "msg": record.getMessage()}
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in data:
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    """One readable line for the one-shot commands (enhance, bench, demo): level, message, key=value."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD and k != "event")
        return f"sonoedge: {record.levelname.lower()}: {record.getMessage()}" + (f" ({extras})" if extras else "")


def setup_logging(level: str, json_lines: bool = True) -> None:
    """Log lines on stderr for the ``sonoedge`` loggers: JSON for the daemon, text for one-shot
    commands (called by the commands, never by the library)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger("sonoedge")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
