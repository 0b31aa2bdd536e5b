"""Test support: the reusable store conformance suite, a throwaway PostgreSQL server and PgBouncer."""

from tgpersist.testing.conformance import StoreConformance, fresh_name, full_session
from tgpersist.testing.pgbouncer import PgBouncerUnavailable, temporary_pgbouncer
from tgpersist.testing.postgres import PostgresUnavailable, server_url, temporary_server

__all__ = [
    "PgBouncerUnavailable",
    "PostgresUnavailable",
    "StoreConformance",
    "fresh_name",
    "full_session",
    "server_url",
    "temporary_pgbouncer",
    "temporary_server",
]
