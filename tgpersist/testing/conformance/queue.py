"""The durable update queue: idempotent enqueue, claims, leases, back-off, dead letters."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from tgpersist import DurableUpdate, Store, UpdateStatus
from tgpersist.testing.conformance.support import fresh_name


class QueueConformance:
    """The durable update queue: idempotent enqueue, claims, leases, back-off, dead letters."""

    # -- durable queue ----------------------------------------------------------------------------------
    async def test_enqueue_is_idempotent_by_id(self, store: Store) -> None:
        acct = store.account(fresh_name())
        assert await acct.updates.enqueue(DurableUpdate(b"first", id="u1")) is True
        assert await acct.updates.enqueue(DurableUpdate(b"second", id="u1")) is False
        assert (
            await acct.updates.enqueue_many(
                [DurableUpdate(b"a", id="u1"), DurableUpdate(b"b", id="u2"), b"c"]
            )
            == 2
        )
        stored = await acct.updates.get("u1")
        assert stored is not None and stored.payload == b"first" and stored.attempts == 0
        assert (await acct.updates.counts())["pending"] == 3

    async def test_claim_hands_out_oldest_first_and_leases(self, store: Store) -> None:
        acct = store.account(fresh_name())
        for i in range(5):
            await acct.updates.enqueue(DurableUpdate(f"p{i}".encode(), id=f"u{i}"))
        first = await acct.updates.claim(2, owner="w1")
        assert [u.id for u in first] == ["u0", "u1"]
        assert all(u.lease_owner == "w1" and u.attempts == 1 for u in first)
        second = await acct.updates.claim(10, owner="w2")
        assert [u.id for u in second] == ["u2", "u3", "u4"]
        assert await acct.updates.claim(10, owner="w3") == []
        assert await acct.updates.ack("u0") is True
        assert await acct.updates.ack("u0") is False
        assert await acct.updates.get("u0") is None

    async def test_expired_lease_makes_update_available_again(self, store: Store) -> None:
        acct = store.account(fresh_name())
        await acct.updates.enqueue(DurableUpdate(b"x", id="u"))
        # Half a second: room for a slow round trip (a loaded machine, a pooler) before the next claim.
        assert [u.id for u in await acct.updates.claim(1, owner="dies", lease=0.5)] == ["u"]
        assert await acct.updates.claim(1, owner="other") == []
        await asyncio.sleep(0.6)
        again = await acct.updates.claim(1, owner="other")
        assert [(u.id, u.lease_owner, u.attempts) for u in again] == [("u", "other", 2)]

    async def test_fail_backs_off_then_dead_letters(self, store: Store) -> None:
        acct = store.account(fresh_name())
        await acct.updates.enqueue(DurableUpdate(b"x", id="u"))
        await acct.updates.claim(1, owner="w")
        assert await acct.updates.fail("u", ValueError("bad payload")) is True
        failed = await acct.updates.get("u")
        assert failed is not None and failed.last_error == "ValueError: bad payload"
        assert failed.status is UpdateStatus.PENDING and failed.lease_owner is None
        assert failed.available_at is not None and failed.available_at > datetime.now(UTC)
        assert await acct.updates.claim(1, owner="w") == []  # backing off
        max_attempts = acct.updates.policy.max_attempts
        for _ in range(max_attempts - 1):
            await acct.updates.fail("u", "again", retry_in=0)
            assert len(await acct.updates.claim(1, owner="w")) == 1
        await acct.updates.fail("u", "final", retry_in=0)
        dead = await acct.updates.dead_letters()
        assert [(u.id, u.status, u.attempts, u.last_error) for u in dead] == [
            ("u", UpdateStatus.DEAD, max_attempts, "final")
        ]
        assert await acct.updates.claim(1, owner="w") == []
        assert await acct.updates.requeue("u") is True
        again = await acct.updates.claim(1, owner="w")
        assert [(u.id, u.attempts) for u in again] == [("u", 1)]
        assert await acct.updates.fail("missing", "x") is False

    async def test_delayed_enqueue(self, store: Store) -> None:
        acct = store.account(fresh_name())
        await acct.updates.enqueue(DurableUpdate(b"later", id="later"), delay=60)
        await acct.updates.enqueue(DurableUpdate(b"now", id="now"))
        assert [u.id for u in await acct.updates.claim(5, owner="w")] == ["now"]

    async def test_concurrent_claims_never_share_an_update(self, store: Store) -> None:
        acct = store.account(fresh_name())
        await acct.updates.enqueue_many(DurableUpdate(b"x", id=f"u{i:03}") for i in range(60))
        batches = await asyncio.gather(
            *(store.account(acct.name).updates.claim(7, owner=f"w{i}") for i in range(12))
        )
        ids = [u.id for batch in batches for u in batch]
        assert len(ids) == len(set(ids)) == 60
