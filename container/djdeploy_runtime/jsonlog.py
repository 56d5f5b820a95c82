"""JSON log lines on stdout in the shape Cloud Logging understands.

Cloud Run forwards each stdout/stderr line; a line that is a JSON object becomes a structured
entry: ``severity`` and ``message`` are recognised, ``logging.googleapis.com/trace`` links the
entry to the request's trace (it must be ``projects/<project>/traces/<trace id>``).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import os
import sys
from typing import Any

TRACE_HEADER = "HTTP_X_CLOUD_TRACE_CONTEXT"

# (trace id, span id or None, sampled) of the request being handled on this thread, if any.
current_trace: contextvars.ContextVar[tuple[str, str | None, bool] | None] = contextvars.ContextVar(
    "djdeploy_trace", default=None
)

# Python's level names that are also Cloud Logging severities; any other level is DEFAULT.
_SEVERITIES = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})
DEFAULT_LEVEL = "INFO"


def log_level() -> str:
    """DJANGO_LOG_LEVEL (a Python level name, default INFO); an unknown name means INFO."""
    name = os.environ.get("DJANGO_LOG_LEVEL", "").strip().upper()
    return name if name in _SEVERITIES else DEFAULT_LEVEL


def parse_trace_header(value: str | None) -> tuple[str, str | None, bool] | None:
    """Parse ``X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1`` (span and option optional)."""
    if not value:
        return None
    trace_part, _, options = value.partition(";")
    trace_id, _, span_id = trace_part.partition("/")
    trace_id = trace_id.strip()
    if not trace_id or not all(c in "0123456789abcdefABCDEF" for c in trace_id):
        return None
    span = span_id.strip() or None
    return trace_id, span, options.strip() == "o=1"


def trace_fields(trace: tuple[str, str | None, bool] | None) -> dict[str, Any]:
    """The LogEntry special fields for a trace; empty when no project is known."""
    project = os.environ.get("GOOGLE_CLOUD_PROJECT", "").strip()
    if trace is None or not project:
        return {}
    trace_id, span_id, sampled = trace
    fields: dict[str, Any] = {
        "logging.googleapis.com/trace": f"projects/{project}/traces/{trace_id}",
        "logging.googleapis.com/trace_sampled": sampled,
    }
    if span_id:
        fields["logging.googleapis.com/spanId"] = span_id
    return fields


class CloudLoggingFormatter(logging.Formatter):
    """One JSON object per record: severity, message, time, logger, source location, trace."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        if record.stack_info:
            message = f"{message}\n{self.formatStack(record.stack_info)}"
        entry: dict[str, Any] = {
            "severity": record.levelname if record.levelname in _SEVERITIES else "DEFAULT",
            "message": message,
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(),
            "logger": record.name,
            "logging.googleapis.com/sourceLocation": {
                "file": record.pathname,
                "line": str(record.lineno),
                "function": record.funcName,
            },
        }
        entry.update(trace_fields(current_trace.get()))
        return json.dumps(entry, default=str, ensure_ascii=False)


def logging_config(level: str | None = None) -> dict[str, Any]:
    """A dictConfig for Django's LOGGING: everything to stdout as JSON, at DJANGO_LOG_LEVEL."""
    level = level or log_level()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "djdeploy_runtime.jsonlog.CloudLoggingFormatter"}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "json",
            }
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            "django": {"handlers": ["stdout"], "level": level, "propagate": False},
            "gunicorn.error": {"handlers": ["stdout"], "level": level, "propagate": False},
            "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        },
    }


def get_logger(name: str) -> logging.Logger:
    """A logger for the entrypoint helpers (run before Django configures logging).

    It writes to stderr, so a helper's stdout stays free for data (discover prints a name).
    """
    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(CloudLoggingFormatter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger
