"""Database URLs as users paste them, translated to what SQLAlchemy's asyncpg and aiosqlite drivers take.

`postgresql://`, `postgres://` and `postgresql+asyncpg://` mean asyncpg; `sqlite:///path` means aiosqlite.
The libpq parameters hosted providers put in URLs (`sslmode`, `sslrootcert`, `connect_timeout`,
`application_name`, `options`, ...) become asyncpg connect arguments; `pgbouncer=true` switches on pooler
mode. Anything else is `InvalidArgument` naming the parameter. Messages never quote a value: a pasted
URL holds a password, and a stray parameter may hold one too.
"""

from __future__ import annotations

import re
import shlex
import ssl
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine.url import URL, make_url
from sqlalchemy.exc import ArgumentError

from tgpersist.errors import InvalidArgument, UnsupportedDatabase

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
#: Schemes that mean asyncpg, and the ones that mean aiosqlite.
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg", "postgres+asyncpg")
SQLITE_SCHEMES = ("sqlite", "sqlite+aiosqlite")
#: The query parameters a PostgreSQL URL may carry (`_postgres` says what each becomes).
POSTGRES_PARAMETERS = (
    "pgbouncer",
    "sslmode",
    "ssl",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "host",
    "connect_timeout",
    "application_name",
    "options",
    "search_path",
    "statement_cache_size",
    "prepared_statement_cache_size",
    "channel_binding",
)
#: pysqlite arguments SQLAlchemy takes from a SQLite URL (`isolation_level` would defeat our BEGIN hook).
SQLITE_PARAMETERS = ("timeout", "uri", "check_same_thread", "cached_statements")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
#: SQLAlchemy's documented `?ssl=true` spelling.
_SSL_FLAGS = {"true": "require", "false": "disable"}
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")


@dataclass
class EngineTarget:
    """What a URL asks for: the SQLAlchemy URL to connect with and the settings around it."""

    url: URL
    #: Extra driver connect arguments (asyncpg: `ssl`, `server_settings`, cache sizes ...).
    connect_args: dict[str, Any] = field(default_factory=dict)
    #: `pgbouncer=true`: a transaction pooler sits in front; no session-level state.
    pooler: bool = False
    #: `connect_timeout` in seconds (None: the URL did not say).
    connect_timeout: float | None = None
    #: Settings for every transaction (`SET LOCAL`): `options`/`search_path` in pooler mode, where
    #: startup parameters are refused.
    transaction_settings: dict[str, str] = field(default_factory=dict)


def translate(url: str | URL) -> EngineTarget:
    """The `EngineTarget` for `url`; `InvalidArgument` or `UnsupportedDatabase` for what we cannot use."""
    parsed = parse(url)
    scheme = parsed.drivername.lower()
    if scheme in SQLITE_SCHEMES:
        return _sqlite(parsed)
    if scheme in POSTGRES_SCHEMES:
        return _postgres(parsed)
    backend = scheme.split("+", 1)[0]
    if backend in ("postgresql", "postgres"):
        raise UnsupportedDatabase(
            f"tgpersist talks to PostgreSQL through asyncpg, not {scheme.split('+', 1)[1]!r}:"
            " use postgresql://... or postgresql+asyncpg://..."
        )
    if backend == "sqlite":
        raise UnsupportedDatabase(
            f"tgpersist talks to SQLite through aiosqlite, not {scheme.split('+', 1)[1]!r}:"
            " use sqlite:///path/to/file.db or sqlite+aiosqlite:///path/to/file.db"
        )
    raise UnsupportedDatabase(
        f"{backend!r} databases are not supported: use postgresql://user@host/db or sqlite:///file.db"
    )


def parse(url: str | URL) -> URL:
    """`url` as a SQLAlchemy `URL`; `InvalidArgument` (the URL itself never quoted) if it is not one."""
    if isinstance(url, URL):
        return url
    if not isinstance(url, str):
        raise InvalidArgument("url", f"expected a string or sqlalchemy URL, got {type(url).__name__}")
    try:
        return make_url(url.strip())
    except (ArgumentError, ValueError):
        # The message would quote the URL, password included.
        raise InvalidArgument(
            "url", "not a database URL (expected scheme://user@host:port/database)"
        ) from None


def _sqlite(url: URL) -> EngineTarget:
    query = dict(url.query)
    uri = _flag("uri", query["uri"]) if "uri" in query else False
    if not uri:  # with uri=true the rest belongs to SQLite's own file URI (mode=ro, cache=shared ...)
        for name in query:
            if name not in SQLITE_PARAMETERS:
                raise InvalidArgument(
                    f"url parameter {name!r}",
                    f"not understood for SQLite (accepted: {', '.join(SQLITE_PARAMETERS)})",
                )
    return EngineTarget(url.set(drivername="sqlite+aiosqlite"))


def _postgres(url: URL) -> EngineTarget:
    query = {name: _single(name, value) for name, value in url.query.items()}
    # `host=/unix/socket/dir` (Cloud SQL, a local server) stays in the URL: SQLAlchemy passes it on.
    kept = {"host": query["host"]} if "host" in query else {}
    target = EngineTarget(url.set(drivername="postgresql+asyncpg", query=kept))
    args = target.connect_args
    settings: dict[str, str] = {}
    for name, value in query.items():
        if name == "pgbouncer":
            target.pooler = _flag(name, value)
        elif name == "connect_timeout":
            target.connect_timeout = _seconds(name, value)
        elif name == "application_name":
            settings["application_name"] = value
        elif name == "options":
            settings.update(_options(value))
        elif name == "search_path":
            settings["search_path"] = value
        elif name in ("statement_cache_size", "prepared_statement_cache_size"):
            args[name] = _count(name, value)
        elif name == "channel_binding":
            if value not in ("disable", "prefer"):
                raise InvalidArgument(
                    "url parameter 'channel_binding'",
                    "asyncpg cannot do channel binding: use channel_binding=prefer or remove it",
                )
        elif name not in POSTGRES_PARAMETERS:
            raise InvalidArgument(
                f"url parameter {name!r}", f"not understood (accepted: {', '.join(POSTGRES_PARAMETERS)})"
            )
    tls = _tls(query)
    if tls is not None:
        args["ssl"] = tls
    # application_name is a startup parameter every pooler passes on; the others are refused there.
    startup = {k: v for k, v in settings.items() if k == "application_name" or not target.pooler}
    if startup:
        args["server_settings"] = startup
    target.transaction_settings = {k: v for k, v in settings.items() if k not in startup}
    if target.pooler:
        args.update(pooler_connect_args(args))
    return target


def pooler_connect_args(given: dict[str, Any]) -> dict[str, Any]:
    """asyncpg and SQLAlchemy arguments for a transaction pooler: no statement caches, and every
    statement asyncpg's unnamed one, asked for by name (""), not left to asyncpg's default: re-parsed
    each time, never left behind on a server connection that another client gets next (unique names
    would be, and asyncpg closes them later on whatever server connection it then has: asyncpg issue
    1058). `given` cache sizes other than 0 are refused."""
    for name in ("statement_cache_size", "prepared_statement_cache_size"):
        if given.get(name, 0) != 0:
            raise InvalidArgument(f"url parameter {name!r}", "must be 0 (or absent) with pgbouncer=true")
    return {
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": unnamed_statement,
    }


def unnamed_statement() -> str:
    """SQLAlchemy's `prepared_statement_name_func` in pooler mode: the unnamed statement."""
    return ""


def _tls(query: dict[str, str]) -> ssl.SSLContext | str | bool | None:
    """asyncpg's `ssl` argument for libpq's `sslmode`/`sslrootcert`/`sslcert`/`sslkey` (None: default)."""
    mode = query.get("sslmode", _SSL_FLAGS.get(query.get("ssl", ""), query.get("ssl")))
    if mode is not None and mode not in SSLMODES:
        raise InvalidArgument("url parameter 'sslmode'", f"expected one of {', '.join(SSLMODES)}")
    root, cert, key = query.get("sslrootcert"), query.get("sslcert"), query.get("sslkey")
    if key is not None and cert is None:
        raise InvalidArgument("url parameter 'sslkey'", "needs sslcert")
    if mode is None:
        if root is None and cert is None:
            return None
        mode = "verify-full" if root is not None else "prefer"  # libpq: a root cert means verify
    if mode == "disable":
        if root is not None or cert is not None:
            raise InvalidArgument("url parameter 'sslmode'", "disable contradicts sslrootcert/sslcert")
        return False
    if mode in ("allow", "prefer") and cert is None:
        return mode
    if mode in ("verify-ca", "verify-full") and root is None:
        raise InvalidArgument(
            "url parameter 'sslrootcert'",
            f"sslmode={mode} needs the server's CA certificate (a file path, or 'system')",
        )
    context = _context(root, verify=mode in ("verify-ca", "verify-full") or root is not None)
    context.check_hostname = mode == "verify-full"
    if cert is not None:
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as error:
            raise InvalidArgument(
                "url parameter 'sslcert'", f"cannot load it: {error.strerror or error}"
            ) from None
    return context


def _context(root: str | None, *, verify: bool) -> ssl.SSLContext:
    if not verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        if root == "system":
            return ssl.create_default_context()
        return ssl.create_default_context(cafile=root)
    except (OSError, ssl.SSLError) as error:
        problem = error.strerror or str(error)
        raise InvalidArgument("url parameter 'sslrootcert'", f"cannot load it: {problem}") from None


def _options(value: str) -> dict[str, str]:
    """libpq's `options`: `-c name=value` (or `--name=value`) pairs, shell-quoted."""
    try:
        words = shlex.split(value)
    except ValueError:
        raise InvalidArgument("url parameter 'options'", "unbalanced quotes") from None
    settings = {}
    words.reverse()
    while words:
        word = words.pop()
        if word == "-c" and words:
            pair = words.pop()
        elif (word.startswith("-c") and len(word) > 2) or word.startswith("--"):
            pair = word[2:]
        else:
            raise InvalidArgument("url parameter 'options'", "expected -c name=value pairs")
        name, equals, setting = pair.partition("=")
        name = name.replace("-", "_")
        if not equals or not _SETTING_NAME.match(name):
            raise InvalidArgument("url parameter 'options'", "expected -c name=value pairs")
        settings[name] = setting
    return settings


def _single(name: str, value: str | tuple[str, ...]) -> str:
    if isinstance(value, tuple):
        raise InvalidArgument(f"url parameter {name!r}", "given more than once")
    return value


def _flag(name: str, value: str | tuple[str, ...]) -> bool:
    text = _single(name, value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidArgument(f"url parameter {name!r}", "expected true or false")


def _seconds(name: str, value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        raise InvalidArgument(f"url parameter {name!r}", "expected a number of seconds") from None
    if not seconds < float("inf") or seconds < 0:
        raise InvalidArgument(f"url parameter {name!r}", "expected a finite number of seconds >= 0")
    return seconds or None  # libpq: 0 means wait indefinitely


def _count(name: str, value: str) -> int:
    if not value.isdigit():
        raise InvalidArgument(f"url parameter {name!r}", "expected a whole number >= 0")
    return int(value)
