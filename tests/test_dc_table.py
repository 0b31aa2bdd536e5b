"""The DC table agrees with the addresses the clients hard-code."""

from __future__ import annotations

import pytest
from pyrogram.storage.sqlite_storage import PROD, TEST
from telethon.client import telegrambaseclient

from tgpersist import InvalidArgument, dc_table


def test_ipv4_addresses_and_ports_are_kurigrams() -> None:
    for dc_id, address in PROD.items():
        if dc_id in dc_table.PRODUCTION:
            assert dc_table.address_of(dc_id) == (address, 443)
    for dc_id, address in TEST.items():
        assert dc_table.address_of(dc_id, test_mode=True) == (address, 80)
    assert set(dc_table.PRODUCTION) == {1, 2, 3, 4, 5} and set(dc_table.TEST) == {1, 2, 3}


def test_telethons_default_dc_is_in_the_table() -> None:
    dc = dc_table.lookup(telegrambaseclient.DEFAULT_DC_ID)
    assert (dc.ipv4, dc.ipv6, dc.port) == (
        telegrambaseclient.DEFAULT_IPV4_IP,
        telegrambaseclient.DEFAULT_IPV6_IP,
        telegrambaseclient.DEFAULT_PORT,
    )
    assert dc_table.address_of(2, ipv6=True) == ("2001:67c:4e8:f002::a", 443)
    assert dc_table.address_of(2, True, ipv6=True) == ("2001:67c:4e8:f002::e", 80)


@pytest.mark.parametrize(
    ("address", "dc_id", "test_mode"),
    [
        ("149.154.167.91", 4, False),
        ("2001:67c:4e8:f004::a", 4, False),
        ("2001:067c:04e8:f004:0000:0000:0000:000a", 4, False),
        ("149.154.175.10", 1, True),
        ("2001:b28:f23d:f003::e", 3, True),
    ],
)
def test_identify_finds_the_dc_of_a_known_address(address: str, dc_id: int, test_mode: bool) -> None:
    found = dc_table.identify(address)
    assert found is not None and (found.dc_id, found.test_mode) == (dc_id, test_mode)


@pytest.mark.parametrize("address", ["10.0.0.1", "::1", "example.org", ""])
def test_identify_knows_nothing_else(address: str) -> None:
    assert dc_table.identify(address) is None


@pytest.mark.parametrize(
    ("dc_id", "test_mode"), [(0, False), (6, False), (4, True), (203, False), (True, False), ("2", False)]
)
def test_unknown_dcs_raise_invalid_argument(dc_id: object, test_mode: bool) -> None:
    with pytest.raises(InvalidArgument) as info:
        dc_table.lookup(dc_id, test_mode)  # type: ignore[arg-type]
    assert info.value.field == "dc_id"
