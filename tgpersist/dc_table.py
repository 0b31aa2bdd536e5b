"""The well-known addresses of Telegram's production and test DCs, as the clients hard-code them.

Pyrogram session strings (and Pyrogram files before schema 7) carry no address: clients fill it in
from this table (Kurigram's `PROD`/`TEST` dicts, the IPv6 ones from Pyrogram's `DataCenter`), with
port 443 in production and 80 on the test servers. Telethon sessions carry an address but no test-mode
flag: an address found here among the test DCs says the session is a test one.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from tgpersist.errors import InvalidArgument

PRODUCTION_PORT = 443
TEST_PORT = 80


@dataclass(frozen=True, slots=True)
class DcAddress:
    """One DC's default addresses and port."""

    dc_id: int
    test_mode: bool
    ipv4: str
    ipv6: str
    port: int


PRODUCTION: dict[int, DcAddress] = {
    1: DcAddress(1, False, "149.154.175.53", "2001:b28:f23d:f001::a", PRODUCTION_PORT),
    2: DcAddress(2, False, "149.154.167.51", "2001:67c:4e8:f002::a", PRODUCTION_PORT),
    3: DcAddress(3, False, "149.154.175.100", "2001:b28:f23d:f003::a", PRODUCTION_PORT),
    4: DcAddress(4, False, "149.154.167.91", "2001:67c:4e8:f004::a", PRODUCTION_PORT),
    5: DcAddress(5, False, "91.108.56.130", "2001:b28:f23f:f005::a", PRODUCTION_PORT),
}

TEST: dict[int, DcAddress] = {
    1: DcAddress(1, True, "149.154.175.10", "2001:b28:f23d:f001::e", TEST_PORT),
    2: DcAddress(2, True, "149.154.167.40", "2001:67c:4e8:f002::e", TEST_PORT),
    3: DcAddress(3, True, "149.154.175.117", "2001:b28:f23d:f003::e", TEST_PORT),
}

_BY_ADDRESS: dict[str, DcAddress] = {
    address: dc for table in (PRODUCTION, TEST) for dc in table.values() for address in (dc.ipv4, dc.ipv6)
}


def lookup(dc_id: int, test_mode: bool = False) -> DcAddress:
    """The default addresses of a DC; `InvalidArgument` for a DC the table does not know."""
    table = TEST if test_mode else PRODUCTION
    found = table.get(dc_id) if isinstance(dc_id, int) and not isinstance(dc_id, bool) else None
    if found is None:
        known = ", ".join(str(k) for k in table)
        kind = "test" if test_mode else "production"
        raise InvalidArgument("dc_id", f"{dc_id!r} is not a known {kind} DC ({known})")
    return found


def address_of(dc_id: int, test_mode: bool = False, *, ipv6: bool = False) -> tuple[str, int]:
    """(address, port) a client connects to by default for this DC."""
    dc = lookup(dc_id, test_mode)
    return (dc.ipv6 if ipv6 else dc.ipv4), dc.port


def identify(address: str) -> DcAddress | None:
    """The DC a known default address belongs to (IPv4 or IPv6, any spelling), or None."""
    try:
        canonical = str(ipaddress.ip_address(address))
    except ValueError:
        return None
    return _BY_ADDRESS.get(canonical)
