"""The exception hierarchy: everything tgpersist raises on purpose derives from `TgPersistError`.

Messages name the field and the problem, never the offending secret value (auth keys, api hashes).
"""

from __future__ import annotations

from datetime import datetime


class TgPersistError(Exception):
    """Base class of every error tgpersist raises deliberately."""


class InvalidArgument(TgPersistError, ValueError):
    """A value handed to tgpersist is malformed; `field` names it, `problem` says what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class SchemaOutOfDate(TgPersistError):
    """The database schema is not at the revision this version of tgpersist expects."""

    def __init__(self, current: tuple[str, ...], expected: tuple[str, ...], hint: str) -> None:
        self.current = current
        self.expected = expected
        shown = ", ".join(current) or "empty"
        super().__init__(f"database schema is at {shown}, expected {', '.join(expected)}: {hint}")


class UnsupportedDatabase(TgPersistError):
    """The URL or engine names a database tgpersist cannot store into."""


class SessionBusy(TgPersistError):
    """Another owner holds the lease on this session."""

    def __init__(self, name: str, owner: str, expires_at: datetime) -> None:
        self.name = name
        self.owner = owner
        self.expires_at = expires_at
        super().__init__(
            f"session {name!r} is held by {owner!r} until {expires_at.isoformat(timespec='seconds')}"
        )


class LeaseLost(TgPersistError):
    """A write carried a lease token that is no longer the session's current one."""

    def __init__(self, name: str, token: int) -> None:
        self.name = name
        self.token = token
        super().__init__(f"lease token {token} on session {name!r} was taken over by another owner")


class InvalidSessionString(TgPersistError, ValueError):
    """A session string could not be decoded."""


class UnsupportedSessionFile(TgPersistError):
    """A file is not a session file tgpersist knows how to read."""


class EncryptionError(TgPersistError):
    """An encrypted value could not be decrypted, or no key is configured for it."""


class DatabaseUnavailable(TgPersistError):
    """The database cannot be reached within the connect timeout, or a connection died after COMMIT was
    sent (`outcome_unknown`: the write may or may not be stored). Names host and port, never a password."""

    def __init__(self, host: str | None, port: int | None, problem: str, *, outcome_unknown: bool = False):
        self.host = host
        self.port = port
        self.problem = problem
        self.outcome_unknown = outcome_unknown
        where = f"{host}:{port}" if port is not None else (host or "the database")
        super().__init__(f"database at {where} is unavailable: {problem}")


class UnreadableRow(TgPersistError):
    """A stored value cannot be read back (written by an older version, or by hand): `session` and
    `field` say where, `problem` what is wrong; the value itself is not shown."""

    def __init__(self, session: str, field: str, problem: str) -> None:
        self.session = session
        self.field = field
        self.problem = problem
        super().__init__(f"session {session!r}: stored {field} cannot be read: {problem}")


class Concealed:
    """Holds a value (a driver error whose text may carry row values) without showing it: its repr and
    str name only the type. `value` gives the value itself to code that asks for it on purpose."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"<concealed {type(self.value).__name__}>"

    __str__ = __repr__


class DatabaseRejected(TgPersistError):
    """The database refused a write. The message names table and constraint or column, never a value;
    the driver's error (whose text may hold row values, secrets included) is `driver_error.value`."""

    def __init__(self, message: str, driver_error: object) -> None:
        self.driver_error = Concealed(driver_error)
        super().__init__(message)


class ConstraintViolation(DatabaseRejected):
    """A row broke a constraint: `kind` is check, unique, not_null, foreign_key or exclusion."""

    def __init__(self, table: str | None, constraint: str | None, kind: str, driver_error: object) -> None:
        self.table = table
        self.constraint = constraint
        self.kind = kind
        where = f"table {table}" if table else "a table"
        name = f" {constraint}" if constraint else ""
        super().__init__(f"{where}: {kind} constraint{name} violated", driver_error)


class DataRejected(DatabaseRejected):
    """The database refused a value (out of range, too long, malformed): `problem` says which kind."""

    def __init__(self, table: str | None, column: str | None, problem: str, driver_error: object) -> None:
        self.table = table
        self.column = column
        self.problem = problem
        where = ".".join(part for part in (table, column) if part) or "a value"
        super().__init__(f"{where}: rejected by the database: {problem}", driver_error)
