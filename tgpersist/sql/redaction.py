"""Log filters that keep statement arguments and result rows (auth keys, api hashes) out of log lines."""

from __future__ import annotations

import functools
import logging

#: SQLAlchemy's engine logger; ours is `ENGINE_LOGGER.LOGGING_NAME`, where result rows are hidden.
ENGINE_LOGGER = "sqlalchemy.engine.Engine"
LOGGING_NAME = "tgpersist"


class HiddenArguments(logging.Filter):
    """aiosqlite logs each call it runs, arguments (SQL parameters) included: show only the call's name."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_call_name(arg) for arg in record.args)
        return True


def _call_name(arg: object) -> object:
    if isinstance(arg, functools.partial):
        name = getattr(arg.func, "__qualname__", type(arg.func).__name__)
        return f"{name}(<arguments hidden>)"
    return arg


class HiddenRows(logging.Filter):
    """SQLAlchemy logs each result row at DEBUG (echo="debug"); rows hold auth keys and api hashes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.endswith("Row %r"):
            record.args = ("<hidden by tgpersist: rows may hold auth keys>",)
        return True


def add_filter(logger: logging.Logger, kind: type[logging.Filter]) -> None:
    if not any(isinstance(f, kind) for f in logger.filters):
        logger.addFilter(kind())
