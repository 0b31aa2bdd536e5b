"""The sent-file cache: round trip, scoping, bad input."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tgpersist import InvalidArgument, SentFile, Store
from tgpersist.testing.conformance.support import INT64_MAX, INT64_MIN, fresh_name


class SentFileConformance:
    """The sent-file cache: round trip, scoping, bad input."""

    # -- sent-file cache --------------------------------------------------------------------------------
    async def test_sent_file_round_trip(self, store: Store) -> None:
        acct = store.account(fresh_name())
        digest = bytes(range(16))
        doc = SentFile(digest, INT64_MAX, 0, INT64_MIN, INT64_MAX)
        photo = SentFile(digest, INT64_MAX, 1, 7, -7)
        other = SentFile(b"\xff" * 16, 0, 0, 1, 2)
        assert await acct.files.get(digest, INT64_MAX, 0) is None
        await acct.files.save(doc)
        assert await acct.files.save_many([other, photo, SentFile(b"\xff" * 16, 0, 0, 3, 4)]) == 2
        assert await acct.files.get(digest, INT64_MAX, 0) == doc
        assert await acct.files.get(bytearray(digest), INT64_MAX, 1) == photo
        assert await acct.files.get(b"\xff" * 16, 0, 0) == SentFile(b"\xff" * 16, 0, 0, 3, 4)
        assert await acct.files.get(digest, INT64_MAX - 1, 0) is None
        assert await acct.files.list() == [doc, photo, SentFile(b"\xff" * 16, 0, 0, 3, 4)]
        await acct.files.save(SentFile(digest, INT64_MAX, 0, 5, 6))
        assert await acct.files.get(digest, INT64_MAX, 0) == SentFile(digest, INT64_MAX, 0, 5, 6)
        assert await acct.files.delete(digest, INT64_MAX, 0) is True
        assert await acct.files.delete(digest, INT64_MAX, 0) is False
        assert await acct.files.get(digest, INT64_MAX, 0) is None
        assert await acct.files.save_many([]) == 0

    async def test_sent_files_are_scoped_and_deleted_with_the_session(self, store: Store) -> None:
        a, b = store.account(fresh_name()), store.account(fresh_name())
        await a.files.save(SentFile(b"a" * 16, 10, 1, 1, 1))
        await b.files.save(SentFile(b"a" * 16, 10, 1, 2, 2))
        assert a.name in await store.list_sessions()
        assert (await b.files.get(b"a" * 16, 10, 1)).id == 2  # type: ignore[union-attr]
        assert await a.session.delete() is True
        assert await a.files.list() == []
        assert await b.files.list() == [SentFile(b"a" * 16, 10, 1, 2, 2)]

    async def test_sent_file_invalid_input(self, store: Store) -> None:
        acct = store.account(fresh_name())
        bad_calls: list[tuple[str, Callable[[], object]]] = [
            ("md5_digest", lambda: SentFile(b"short", 1, 0, 1, 1)),
            ("md5_digest", lambda: SentFile("0" * 16, 1, 0, 1, 1)),  # type: ignore[arg-type]
            ("file_size", lambda: SentFile(b"x" * 16, -1, 0, 1, 1)),
            ("type", lambda: SentFile(b"x" * 16, 1, -1, 1, 1)),
            ("id", lambda: SentFile(b"x" * 16, 1, 0, 2**63, 1)),
            ("access_hash", lambda: SentFile(b"x" * 16, 1, 0, 1, None)),  # type: ignore[arg-type]
        ]
        for field, call in bad_calls:
            with pytest.raises(InvalidArgument) as info:
                call()
            assert info.value.field == field
        bad_coroutines: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("file", lambda: acct.files.save((b"x" * 16, 1, 0, 1, 1))),  # type: ignore[arg-type]
            ("md5_digest", lambda: acct.files.get(b"x" * 15, 1, 0)),
            ("file_size", lambda: acct.files.delete(b"x" * 16, 1.5, 0)),  # type: ignore[arg-type]
        ]
        for field, coro in bad_coroutines:
            with pytest.raises(InvalidArgument) as info:
                await coro()
            assert info.value.field == field
        assert await acct.files.list() == []
