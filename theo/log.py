"""Logging set-up: one structured line per request, as JSON or human-readable console text."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

REQUEST_LOGGER = "theo.request"

# Attributes every LogRecord has; anything else was passed through ``extra=``.
_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


class ConsoleFormatter(logging.Formatter):
    """``time level logger message key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        when = self.formatTime(record)
        line = f"{when} {record.levelname:<7} {record.name} {record.getMessage()}"
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        if extras:
            line = f"{line} {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure_logging(log_format: str = "console", level: str = "INFO") -> None:
    """Give the ``theo`` loggers one stderr handler in the chosen format (idempotent)."""
    logger = logging.getLogger("theo")
    for handler in list(logger.handlers):
        if getattr(handler, "_theo", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._theo = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if log_format == "json" else ConsoleFormatter())
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
