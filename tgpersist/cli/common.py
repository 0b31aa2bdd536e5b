"""Helpers shared by the CLI command modules: the common options, opening an existing store without
creating anything, confirming destructive commands, error lines and exit codes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

import tgpersist
from tgpersist import migrate
from tgpersist.encryption import KeySource
from tgpersist.models import Placement
from tgpersist.sql import engines, urls
from tgpersist.store import DEFAULT_CONNECT_TIMEOUT, DEFAULT_URL

URL_ENV = "TGPERSIST_URL"

#: Exit statuses of every command (shown by `--help`).
EXIT_OK, EXIT_FAILED, EXIT_MISSING, EXIT_REFUSED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES = f"""exit status:
  {EXIT_OK}    done
  {EXIT_FAILED}    failed (one line on stderr says why: bad input, database error, schema out of date)
  {EXIT_MISSING}    usage error, or the database or its tgpersist tables do not exist
  {EXIT_REFUSED}    a destructive command was not confirmed (no terminal and no --yes, or answered no)
  {EXIT_INTERRUPTED}  interrupted"""


class CommandError(tgpersist.TgPersistError):
    """A command cannot do what was asked (e.g. the named session does not exist)."""

    exit_code = EXIT_FAILED


class MissingDatabase(CommandError):
    """A command that only reads (or changes existing rows) found no database or no tables."""

    exit_code = EXIT_MISSING


class Refused(CommandError):
    """A destructive command was not confirmed."""

    exit_code = EXIT_REFUSED


def document_exit_codes(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXIT_CODES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


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
        default=None,
        metavar="SECONDS",
        help="give up reaching the database after this long (default: the URL's connect_timeout, "
        f"else {DEFAULT_CONNECT_TIMEOUT:g})",
    )
    document_exit_codes(parser)


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")


def add_yes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--yes", "-y", action="store_true", help="do it without asking (needed without a tty)"
    )


async def open_store(args: argparse.Namespace, *, upgrade: bool = False) -> tgpersist.Store:
    """A store that may create the database and its tables: for the commands that put data in."""
    return await tgpersist.open_store(
        args.url,
        upgrade=upgrade,
        prefix=args.prefix,
        schema=args.schema,
        connect_timeout=args.connect_timeout,
    )


def placement(args: argparse.Namespace) -> Placement:
    return Placement(prefix=args.prefix, schema=args.schema)


def shown_url(url: str) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def require_database_file(url: str) -> None:
    """A SQLite URL must name an existing file: connecting would create an empty one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    if parsed.database.startswith("file:") or Path(parsed.database).is_file():
        return
    raise MissingDatabase(f"no database file {parsed.database}: create it with `tgpersist db upgrade`")


async def require_tables(engine: object, args: argparse.Namespace) -> tuple[str, ...]:
    """The revision(s) the database is at; `MissingDatabase` if tgpersist never migrated it (read only)."""
    where = placement(args)
    revisions = await migrate.current(engine, placement=where)  # type: ignore[arg-type]
    if not revisions:
        schema = f" in schema {where.schema}" if where.schema else ""
        raise MissingDatabase(
            f"no tgpersist tables (prefix {where.prefix}){schema} at {shown_url(args.url)}:"
            " create them with `tgpersist db upgrade`"
        )
    return revisions


def connect_timeout(args: argparse.Namespace) -> float:
    """`--connect-timeout`, else the URL's `connect_timeout`, else the default."""
    given: float | None = getattr(args, "connect_timeout", None)
    return given or urls.translate(args.url).connect_timeout or DEFAULT_CONNECT_TIMEOUT


@contextlib.asynccontextmanager
async def existing_store(
    args: argparse.Namespace, *, encryption_key: KeySource | None = None, check_keys: bool = False
) -> AsyncIterator[tgpersist.Store]:
    """A store on an existing, migrated database; creates nothing (no file, schema, table or revision).

    `check_keys`: fail before anything else unless the encryption key opens the stored auth keys.
    """
    where = placement(args)
    require_database_file(args.url)
    timeout = connect_timeout(args)
    engine = engines.create_engine(args.url, connect_timeout=timeout)
    try:
        store = tgpersist.Store(
            engine,
            prefix=where.prefix,
            schema=where.schema,
            encryption_key=encryption_key,
            connect_timeout=timeout,
        )
        await require_tables(engine, args)
        await store.check_schema()  # at head, or SchemaOutOfDate: the tables exist, so nothing is created
        if check_keys:
            await store.check_encryption()
        async with store:
            yield store
    finally:
        await engine.dispose()


async def confirm(args: argparse.Namespace, plan: str) -> None:
    """Show `plan` and go on only if confirmed: `--yes`, or "y" typed on a terminal; else `Refused`."""
    print(plan, file=sys.stderr)
    if args.yes:
        return
    if not _interactive():
        raise Refused("refusing without confirmation: no terminal to ask on (pass --yes)")
    sys.stderr.write("Proceed? [y/N] ")
    sys.stderr.flush()
    answer = await asyncio.to_thread(sys.stdin.readline)
    if answer.strip().lower() not in ("y", "yes"):
        raise Refused("not confirmed: nothing was changed")


def _interactive() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


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
