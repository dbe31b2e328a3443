"""How modelplane's processes log: one JSON object per line, the contract between the containers that write it
(trainer, server), the cluster's log shipper that parses it, and `modelplane logs` that reads it back.

Every line has `time` (UTC, ISO 8601, milliseconds), `level`, `logger` and `message`; then the process's
context (the trainer's `job` and `rank`, the server's `model`), the fields a call passes as `extra=`
(`step`, `request_id`, `status`, `duration_ms`, ...) and, after a failure, `exception` with the traceback.
The text format shows the same fields for a person at a terminal.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TextIO

TIME = "time"
LEVEL = "level"
LOGGER = "logger"
MESSAGE = "message"
EXCEPTION = "exception"
CORE_FIELDS = (TIME, LEVEL, LOGGER, MESSAGE)


class LogFormat(StrEnum):
    JSON = "json"
    """One JSON object per line: what the cluster's log shipper merges into searchable fields."""
    TEXT = "text"
    """`time level logger: message key=value ...`, for a person reading a terminal."""


_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    # uvicorn's copy of its message with terminal colour codes.
    "color_message",
}
"""Attributes every LogRecord has; any other attribute came from the call's `extra=` and is logged as a field."""


def iso_time(epoch_seconds: float) -> str:
    """`2026-08-01T12:00:00.123Z`: UTC, millisecond precision, sortable as text."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def json_safe(value: Any) -> Any:
    """`value` with NaN and infinities as strings (JSON has no such numbers: a diverged loss must still log)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def record_fields(
    record: logging.LogRecord, context: Mapping[str, Any], formatter: logging.Formatter
) -> dict[str, Any]:
    """The fields of one log line: the core four, the process's context, the call's extras, the exception."""
    fields: dict[str, Any] = {
        TIME: iso_time(record.created),
        LEVEL: record.levelname,
        LOGGER: record.name,
        MESSAGE: record.getMessage(),
    }
    fields.update(context)
    fields.update(
        (key, value)
        for key, value in vars(record).items()
        if key not in _STANDARD_ATTRIBUTES and not key.startswith("_") and key not in CORE_FIELDS
    )
    if record.exc_info:
        fields[EXCEPTION] = formatter.formatException(record.exc_info)
    elif record.exc_text:
        fields[EXCEPTION] = record.exc_text
    if record.stack_info:
        fields["stack"] = formatter.formatStack(record.stack_info)
    return fields


def json_line(fields: Mapping[str, Any]) -> str:
    """One line of JSON; values JSON cannot hold (paths, enums) as their text."""
    return json.dumps(json_safe(dict(fields)), ensure_ascii=False, default=str)


def text_line(fields: Mapping[str, Any]) -> str:
    """`time level logger: message key=value ...`, then the exception's lines; what `modelplane logs` prints too."""
    head = " ".join(str(fields[key]) for key in (TIME, LEVEL) if fields.get(key) not in (None, ""))
    logger, message = fields.get(LOGGER), fields.get(MESSAGE, "")
    line = f"{head} {logger}: {message}" if logger else f"{head} {message}"
    extras = [f"{key}={value}" for key, value in fields.items() if key not in (*CORE_FIELDS, EXCEPTION)]
    if extras:
        line += " " + " ".join(extras)
    line = line.strip()
    if fields.get(EXCEPTION):
        line += "\n" + str(fields[EXCEPTION])
    return line


class LogLineFormatter(logging.Formatter):
    """Formats every record as one line of `log_format`, with `context` (fields of the whole process) added."""

    def __init__(self, log_format: LogFormat, context: Mapping[str, Any] | None = None):
        super().__init__()
        self.log_format = LogFormat(log_format)
        self.context = dict(context or {})

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record, self.context, self)
        return json_line(fields) if self.log_format is LogFormat.JSON else text_line(fields)


def configure_logging(
    level: int | str,
    log_format: LogFormat | str,
    context: Mapping[str, Any] | None = None,
    *,
    stream: TextIO | None = None,
    filters: Iterable[logging.Filter] = (),
) -> logging.Handler:
    """Send every logger's records (the root's handler) to `stream` (default stderr) as `log_format` lines.

    Replaces handlers configured before; returns the handler, e.g. for a filter that adds a request's id.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(LogLineFormatter(LogFormat(log_format), context))
    for log_filter in filters:
        handler.addFilter(log_filter)
    logging.basicConfig(level=level.upper() if isinstance(level, str) else level, handlers=[handler], force=True)
    return handler


def send_to_root(*logger_names: str) -> None:
    """Make libraries that install their own handler (DeepSpeed prints plain text to stdout) log through the
    root's, so their lines are in the same format as everyone else's."""
    for name in logger_names:
        library_logger = logging.getLogger(name)
        for handler in list(library_logger.handlers):
            library_logger.removeHandler(handler)
        library_logger.propagate = True


def parse_line(line: str) -> dict[str, Any] | None:
    """The fields of a JSON log line, or None for any other line (a library's plain print, a progress bar)."""
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        fields = json.loads(text)
    except json.JSONDecodeError:
        return None
    return fields if isinstance(fields, dict) and MESSAGE in fields else None
