"""Set up logging for the server and the agent: human text or one JSON object per line.

The format comes from the command line (``--log-format``), else from the environment
variable :data:`LOG_FORMAT_ENV` (``LINKWATCH_LOG_FORMAT``), else text. JSON lines carry
``ts`` (UTC, RFC 3339, milliseconds), ``level``, ``logger``, ``message``, any ``extra=``
fields given to the log call, and ``exc_type``/``exc`` (the traceback text) when an
exception is logged; non-ASCII text (Lao) is written as is, in UTF-8.

uvicorn installs its own handlers unless told otherwise: pass :func:`uvicorn_log_config`
as ``uvicorn.Config(log_config=...)`` so its lines go through the same root handler.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TextIO

LOG_FORMAT_ENV = "LINKWATCH_LOG_FORMAT"
"""Environment variable naming the log format when ``--log-format`` is not given."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


class LogFormat(StrEnum):
    """How log lines are written."""

    TEXT = "text"
    JSON = "json"


def resolve_format(option: str | None, environ: Mapping[str, str] | None = None) -> LogFormat:
    """Return the log format: ``option`` if given, else ``$LINKWATCH_LOG_FORMAT``, else text.

    Raises ValueError with one sentence naming the option or the variable when the value
    is neither ``text`` nor ``json`` (case and surrounding blanks are ignored).
    """
    env = os.environ if environ is None else environ
    if option is not None:
        return _parse(option, "--log-format")
    value = env.get(LOG_FORMAT_ENV, "").strip()
    return _parse(value, LOG_FORMAT_ENV) if value else LogFormat.TEXT


def _parse(value: str, where: str) -> LogFormat:
    try:
        return LogFormat(value.strip().lower())
    except ValueError:
        allowed = ", ".join(f.value for f in LogFormat)
        raise ValueError(f"{where}: unknown log format {value!r}; use one of: {allowed}") from None


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object on one line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON line (without the newline)."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_") and key not in out:
                out[key] = value if _jsonable(value) else repr(value)
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=repr)


def _jsonable(value: object) -> bool:
    return isinstance(value, str | int | float | bool | type(None) | list | dict)


def make_formatter(fmt: LogFormat | str) -> logging.Formatter:
    """Return the formatter of ``fmt`` (``text`` or ``json``; ValueError otherwise)."""
    if _parse(str(fmt), "log format") is LogFormat.JSON:
        return JsonFormatter()
    return logging.Formatter(TEXT_FORMAT)


def setup_logging(
    verbose: bool, fmt: LogFormat | str = LogFormat.TEXT, stream: TextIO | None = None
) -> None:
    """Send every log record to ``stream`` (default stderr) in ``fmt``, replacing handlers.

    Args:
        verbose: log DEBUG and up; else INFO and up.
        fmt: ``text`` (``TIME LEVEL LOGGER: message``) or ``json`` (one object per line);
            resolve it with :func:`resolve_format`.
        stream: where to write; the process's stderr by default.

    Calling it again replaces the previous set-up. Raises ValueError for an unknown ``fmt``.
    """
    formatter = make_formatter(fmt)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def uvicorn_log_config(verbose: bool = False) -> dict[str, Any]:
    """Return a ``logging.config.dictConfig`` for uvicorn that keeps our root handler.

    uvicorn's loggers get no handler of their own and propagate to the root one set by
    :func:`setup_logging`, so their lines take the same format. The access log stays at
    WARNING (one line per request would drown the service's own events) unless ``verbose``.
    """
    level = "DEBUG" if verbose else "INFO"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.access": {
                "handlers": [],
                "propagate": True,
                "level": "DEBUG" if verbose else "WARNING",
            },
        },
    }
