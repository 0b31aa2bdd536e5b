"""Test support: the reusable store conformance suite and a throwaway PostgreSQL server."""

from tgpersist.testing.conformance import StoreConformance, fresh_name, full_session
from tgpersist.testing.postgres import PostgresUnavailable, server_url, temporary_server

__all__ = [
    "PostgresUnavailable",
    "StoreConformance",
    "fresh_name",
    "full_session",
    "server_url",
    "temporary_server",
]
