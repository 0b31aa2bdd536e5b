"""The store conformance suite: what every tgpersist backend must do, as reusable pytest tests.

Subclass `StoreConformance` in a test module and provide an async `store` fixture that yields a
`tgpersist.Store` (or anything with the same interface) on an empty, migrated database::

    from tgpersist.testing import StoreConformance

    class TestMyBackend(StoreConformance):
        @pytest.fixture
        async def store(self):
            async with await open_my_store() as store:
                yield store

Tests only use the public API, and each uses fresh account names, so one store may serve them all.
"""

from __future__ import annotations

import pytest

from tgpersist.testing.conformance.conversations import ConversationConformance
from tgpersist.testing.conformance.dc_auth import DcAuthConformance
from tgpersist.testing.conformance.files import SentFileConformance
from tgpersist.testing.conformance.peers import PeerConformance
from tgpersist.testing.conformance.queue import QueueConformance
from tgpersist.testing.conformance.sessions import SessionConformance
from tgpersist.testing.conformance.support import fresh_name, full_session
from tgpersist.testing.conformance.updates import UpdateConformance
from tgpersist.testing.conformance.validation import ValidationConformance

__all__ = ["StoreConformance", "fresh_name", "full_session"]


@pytest.mark.asyncio
class StoreConformance(
    SessionConformance,
    PeerConformance,
    ConversationConformance,
    DcAuthConformance,
    UpdateConformance,
    QueueConformance,
    ValidationConformance,
    SentFileConformance,
):
    """Behaviour every store must have. Provide a `store` fixture (see the module docstring)."""
