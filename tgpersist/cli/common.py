"""Helpers shared by the CLI command modules: the `--url` option, opening a store, error lines."""

from __future__ import annotations

import argparse
import os
import sys

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

import tgpersist
from tgpersist.models import Placement
from tgpersist.store import DEFAULT_CONNECT_TIMEOUT, DEFAULT_URL

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
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=DEFAULT_CONNECT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up reaching the database after this long (default: {DEFAULT_CONNECT_TIMEOUT:g})",
    )


async def open_store(args: argparse.Namespace, *, upgrade: bool = False) -> tgpersist.Store:
    return await tgpersist.open_store(
        args.url,
        upgrade=upgrade,
        prefix=args.prefix,
        schema=args.schema,
        connect_timeout=args.connect_timeout,
    )


def placement(args: argparse.Namespace) -> Placement:
    return Placement(prefix=args.prefix, schema=args.schema)


def fail(message: str) -> None:
    print(f"tgpersist: error: {message}", file=sys.stderr)


def describe(error: BaseException) -> str:
    """One line for an error; database errors show the driver's message, not SQL or parameters."""
    if isinstance(error, DBAPIError) and error.orig is not None:
        return f"{type(error.orig).__name__}: {str(error.orig).splitlines()[0]}"
    if isinstance(error, SQLAlchemyError):
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text
