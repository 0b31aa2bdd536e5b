"""grammers' `DcOption` and tgpersist's `DcAuth`, one into the other (addresses as "ip:port" text)."""

from __future__ import annotations

from typing import Any

from grammers.sessions import DcOption

from tgpersist.domain import DcAuth
from tgpersist.errors import InvalidArgument


def _split(address: str, field: str) -> tuple[str, int]:
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit():
        raise InvalidArgument(field, "expected an address with a port")
    return host.removeprefix("[").removesuffix("]"), int(port)


def dc_auth_of(option: Any) -> DcAuth:
    """The `DcAuth` a grammers `DcOption` stands for (the port kept is its IPv4 address's)."""
    ipv4, port = _split(str(option.ipv4), "ipv4")
    ipv6, _ = _split(str(option.ipv6), "ipv6")
    return DcAuth(dc_id=option.id, auth_key=option.auth_key, ipv4=ipv4, ipv6=ipv6, port=port)


def dc_option_of(entry: DcAuth) -> Any:
    """The grammers `DcOption` of a stored `DcAuth` (port 443 if none was stored)."""
    port = entry.port if entry.port is not None else 443
    ipv4 = f"{entry.ipv4}:{port}" if entry.ipv4 else None
    ipv6 = f"[{entry.ipv6}]:{port}" if entry.ipv6 else None
    return DcOption(entry.dc_id, ipv4, ipv6, entry.auth_key)
