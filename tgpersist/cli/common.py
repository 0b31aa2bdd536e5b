"""Helpers shared by the CLI command modules: the `--url` option, opening a store, error lines."""

from __future__ import annotations

import argparse
import os
import sys

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

import tgpersist
from tgpersist.models import Placement
from tgpersist.sql import urls
from tgpersist.store import DEFAULT_URL

URL_ENV = "TGPERSIST_URL"


class CommandError(tgpersist.TgPersistError):
    """A command cannot do what was asked (e.g. the named session does not exist)."""


def add_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get(URL_ENV) or DEFAULT_URL,
        help=f"database URL (default: ${URL_ENV}, else {DEFAULT_URL})",
    )
    parser.add_argument("--prefix", default="tgpersist_", help="table name prefix (default: tgpersist_)")
    parser.add_argument("--schema", default=None, help="PostgreSQL schema for the tables (default: none)")


async def open_store(args: argparse.Namespace, *, upgrade: bool = False) -> tgpersist.Store:
    return await tgpersist.open_store(args.url, upgrade=upgrade, prefix=args.prefix, schema=args.schema)


def placement(args: argparse.Namespace) -> Placement:
    return Placement(prefix=args.prefix, schema=args.schema)


def fail(message: str) -> None:
    print(f"tgpersist: error: {message}", file=sys.stderr)


def describe(error: BaseException, url: str | None = None) -> str:
    """One line for an error; database errors show the driver's message, not SQL or parameters.
    A failure to connect names the database of `url` (host, port, name; never the password)."""
    if url is not None and _is_connect_failure(error):
        cause = error.problem if isinstance(error, tgpersist.DatabaseUnavailable) else describe(error)
        return f"cannot connect to {_where(url)}: {cause}"
    if isinstance(error, DBAPIError) and error.orig is not None:
        return f"{type(error.orig).__name__}: {str(error.orig).splitlines()[0]}"
    if isinstance(error, SQLAlchemyError):
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text


def _is_connect_failure(error: BaseException) -> bool:
    # SQLAlchemy wraps a driver error raised while connecting without a statement.
    return isinstance(error, tgpersist.DatabaseUnavailable | OSError) or (
        isinstance(error, DBAPIError) and error.statement is None
    )


def _where(url: str) -> str:
    try:
        parsed = urls.parse(url)
    except tgpersist.InvalidArgument:
        return "the database"
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite database {parsed.database or ':memory:'!r}"
    port = parsed.port or 5432
    return f"PostgreSQL database {parsed.database or parsed.username or ''!r} at {parsed.host}:{port}"
