"""Operational logs. `LOG_FORMAT=json` makes the API and the pipeline write one JSON object per
line on stdout (for a log shipper); the default, `text`, keeps today's human output untouched.

The pipeline's steps are logged as `step_started` / `step_finished` records (step, seconds,
outcome); in JSON mode whatever a step prints becomes a record of that step too (stderr as
warnings), so a shipper never sees a bare line. Lines that are JSON already (dbt's own, with
DBT_LOG_FORMAT=json) pass through unchanged.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import time
from collections.abc import Iterator

from pythonjsonlogger.json import JsonFormatter

from streamflow import config

JSON_FIELDS = "{levelname}{name}{message}"
RENAMED = {"levelname": "level", "name": "logger"}
TIMESTAMP_FIELD = "time"  # ISO 8601, UTC


def log_format() -> str:
    return config.get(config.LOG_FORMAT)


def json_enabled() -> bool:
    return log_format() == "json"


def json_formatter() -> logging.Formatter:
    return JsonFormatter(JSON_FIELDS, style="{", rename_fields=RENAMED, timestamp=TIMESTAMP_FIELD)


class _StdoutHandler(logging.StreamHandler):
    """Writes to the stdout of the moment (a test's capture, say), never into a step's own capture."""

    @property
    def stream(self):
        current = sys.stdout
        return current.stream if isinstance(current, _StepLines) else current

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns one; the property decides
        pass


def json_logger(name: str) -> logging.Logger:
    """A logger writing JSON lines to stdout, whatever the root logger does (uvicorn sets its own)."""
    logger = logging.getLogger(name)
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(json_formatter())
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def uvicorn_log_config() -> dict | None:
    """uvicorn's own records (startup, errors) as JSON lines in JSON mode; None keeps its default."""
    if not json_enabled():
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": JSON_FIELDS,
                "style": "{",
                "rename_fields": RENAMED,
                "timestamp": TIMESTAMP_FIELD,
            }
        },
        "handlers": {"json": handler},
        "loggers": {
            "uvicorn": {"handlers": ["json"], "level": "WARNING", "propagate": False},
            "uvicorn.error": {"handlers": ["json"], "level": "WARNING", "propagate": False},
            "uvicorn.access": {"handlers": ["json"], "level": "WARNING", "propagate": False},
        },
    }


class _StepLines(io.TextIOBase):
    """stdout while a step runs in JSON mode: each printed line becomes a record of the step."""

    def __init__(self, logger: logging.Logger, step: str, stream, level: int = logging.INFO):
        self.logger, self.step, self.stream, self.level, self.pending = logger, step, stream, level, ""
        self.emitting = False  # a failing handler reports on stderr: that must not loop back here

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self._emit(line)
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self._emit(self.pending)
            self.pending = ""

    def _emit(self, line: str) -> None:
        if not line.strip():
            return
        if self.emitting or line.lstrip().startswith("{"):  # a JSON record already (dbt's)
            self.stream.write(line + "\n")
            return
        self.emitting = True
        try:
            self.logger.log(self.level, line.strip(), extra={"step": self.step, "event": "output"})
        finally:
            self.emitting = False


@contextlib.contextmanager
def step(name: str, logger_name: str = "streamflow.pipeline") -> Iterator[None]:
    """One pipeline step: text mode prints its heading as before; JSON mode logs its start, its
    output and its end (seconds, outcome)."""
    if not json_enabled():
        print(f"\n==> {name}", flush=True)
        yield
        return
    logger = json_logger(logger_name)
    logger.info("step started", extra={"step": name, "event": "step_started"})
    started = time.perf_counter()
    lines = _StepLines(logger, name, sys.stdout)
    warnings = _StepLines(logger, name, sys.stdout, logging.WARNING)
    outcome = "failed"
    try:
        with contextlib.redirect_stdout(lines), contextlib.redirect_stderr(warnings):
            yield
        outcome = "ok"
    finally:
        lines.flush()
        warnings.flush()
        logger.info(
            "step finished",
            extra={
                "step": name,
                "event": "step_finished",
                "outcome": outcome,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )


def say(message: str, logger_name: str = "streamflow.pipeline", error: bool = False, **fields) -> None:
    """A line for people in text mode (on stderr when it is an `error`), a record in JSON mode."""
    if json_enabled():
        json_logger(logger_name).log(logging.ERROR if error else logging.INFO, message.strip(), extra=fields)
    else:
        print(message, file=sys.stderr if error else sys.stdout, flush=True)
