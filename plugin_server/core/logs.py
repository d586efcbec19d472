"""Structured logging: JSON lines (or console) through structlog, level from LOG_LEVEL."""

from __future__ import annotations

import logging
import sys

import structlog


def configure(level: str = "info", fmt: str = "json") -> None:
    numeric = logging.getLevelName(level.upper())
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Libraries log through the standard library: keep their warnings, as one line each.
    logging.basicConfig(
        level=max(numeric, logging.WARNING), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )


def get(name: str) -> structlog.typing.FilteringBoundLogger:
    # `configure` (and structlog's default) wraps loggers with make_filtering_bound_logger, whose
    # instances are FilteringBoundLogger; get_logger is typed Any because the wrapper is configurable.
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
