"""The reusable conformance suite, run on every backend we ship."""

from tgpersist.testing import StoreConformance


class TestConformance(StoreConformance):
    """`store` comes from conftest, parametrized over SQLite and PostgreSQL."""
