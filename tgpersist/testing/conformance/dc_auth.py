"""Per-DC auth keys: round trip and delete."""

from __future__ import annotations

from dataclasses import replace

from tgpersist import DcAuth, Store
from tgpersist.testing.conformance.support import INT64_MIN, KEY_A, KEY_B, fresh_name


class DcAuthConformance:
    """Per-DC auth keys: round trip and delete."""

    # -- DC auth ------------------------------------------------------------------------------------
    async def test_dc_auth_round_trip(self, store: Store) -> None:
        acct = store.account(fresh_name())
        main = DcAuth(
            2,
            auth_key=KEY_A,
            server_salt=INT64_MIN,
            ipv4="149.154.167.51",
            ipv6="2001:67c:4e8:f002::a",
            port=443,
        )
        media = DcAuth(2, auth_key=KEY_B, media_only=True, port=80)
        other = DcAuth(5)
        for entry in (main, media, other):
            await acct.dc_auth.save(entry)
        assert await acct.dc_auth.load(2) == main
        assert await acct.dc_auth.load(2, media_only=True) == media
        assert await acct.dc_auth.load(3) is None
        assert await acct.dc_auth.list() == [main, media, other]
        await acct.dc_auth.save(replace(main, auth_key=KEY_B))
        assert (await acct.dc_auth.load(2)).auth_key == KEY_B  # type: ignore[union-attr]
        assert await acct.dc_auth.delete(5) is True
        assert await acct.dc_auth.delete(5) is False
