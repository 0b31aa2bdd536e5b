"""Session strings of Telethon and Pyrogram/Kurigram, decoded and encoded byte for byte as those clients do.

- Telethon `StringSession`: the version character ``1``, then URL-safe base64 (padded) of
  ``>B{4|16}sH256s``: dc id, packed IPv4 or IPv6 address, port, auth key.
- Pyrogram/Kurigram: URL-safe base64 without padding of ``>BI?256sQ?`` (dc id, api id, test mode, auth
  key, user id, is bot); the older ``>B?256sI?`` and ``>B?256sQ?`` layouts (no api id) are read too.

Fields a layout lacks are filled from `tgpersist.dc_table` where that is possible (the address of a
Pyrogram session, as Kurigram itself does) and reported in `DecodedString.filled_from_dc_table`; what
nothing can fill (Telethon strings carry no user id) is listed in `DecodedString.missing`.
"""

from __future__ import annotations

import base64
import binascii
import enum
import ipaddress
import re
import struct
from dataclasses import dataclass, replace
from typing import TypeVar

from tgpersist import dc_table
from tgpersist.domain import Session
from tgpersist.errors import InvalidArgument, InvalidSessionString

TELETHON_VERSION = "1"
_TELETHON_STRUCT = ">B{}sH256s"
PYROGRAM_STRUCT = ">BI?256sQ?"
PYROGRAM_OLD_STRUCT = ">B?256sI?"
PYROGRAM_OLD_64_STRUCT = ">B?256sQ?"

_BASE64 = re.compile(r"[A-Za-z0-9_-]*={0,2}")

T = TypeVar("T")


class StringFormat(enum.Enum):
    """Which client's session string."""

    TELETHON = "telethon"
    PYROGRAM = "pyrogram"


class Layout(enum.Enum):
    """The exact binary layout a string used."""

    TELETHON_IPV4 = "telethon-ipv4"
    TELETHON_IPV6 = "telethon-ipv6"
    PYROGRAM = "pyrogram"
    PYROGRAM_OLD = "pyrogram-old"
    PYROGRAM_OLD_64 = "pyrogram-old-64"

    @property
    def format(self) -> StringFormat:
        return StringFormat.TELETHON if self.value.startswith("telethon") else StringFormat.PYROGRAM


def _b64_length(raw: int) -> int:
    """Characters of unpadded base64 for `raw` bytes."""
    return (raw * 4 + 2) // 3


#: Telethon: total string length (version character + padded base64) -> layout.
_TELETHON_LENGTHS = {
    1 + 4 * ((struct.calcsize(_TELETHON_STRUCT.format(n)) + 2) // 3): layout
    for n, layout in ((4, Layout.TELETHON_IPV4), (16, Layout.TELETHON_IPV6))
}
#: Pyrogram: unpadded base64 length -> (layout, struct format); Kurigram tells the layouts apart this way.
_PYROGRAM_LENGTHS = {
    _b64_length(struct.calcsize(fmt)): (layout, fmt)
    for layout, fmt in (
        (Layout.PYROGRAM, PYROGRAM_STRUCT),
        (Layout.PYROGRAM_OLD, PYROGRAM_OLD_STRUCT),
        (Layout.PYROGRAM_OLD_64, PYROGRAM_OLD_64_STRUCT),
    )
}


@dataclass(frozen=True, slots=True)
class DecodedString:
    """A decoded session string: the `Session` (named as asked) and what the layout could not carry.

    `filled_from_dc_table` names the fields taken from the DC table rather than the string;
    `missing` names those the string does not carry and nothing could fill (left None).
    """

    session: Session
    layout: Layout
    filled_from_dc_table: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    @property
    def format(self) -> StringFormat:
        return self.layout.format


@dataclass(frozen=True, slots=True)
class Completed:
    """A session made ready for a format: what came from the DC table, what was assumed."""

    session: Session
    filled_from_dc_table: tuple[str, ...] = ()
    assumed: tuple[str, ...] = ()


def decode(text: str, *, name: str, format: StringFormat | str | None = None) -> DecodedString:
    """Decode a Telethon or Pyrogram/Kurigram session string (told apart by length unless `format`).

    Surrounding whitespace is ignored. Anything malformed raises `InvalidSessionString`; the message
    never contains the string.
    """
    if not isinstance(text, str):
        raise InvalidSessionString(f"a session string must be text, got {type(text).__name__}")
    wanted = _format(format)
    text = text.strip()
    if not text:
        raise InvalidSessionString("the session string is empty")
    telethon_layout = _TELETHON_LENGTHS.get(len(text))
    pyrogram_layout = _PYROGRAM_LENGTHS.get(len(text.rstrip("=")))
    if wanted is not StringFormat.PYROGRAM and telethon_layout is not None:
        return _decode_telethon(text, telethon_layout, name)
    if wanted is not StringFormat.TELETHON and pyrogram_layout is not None:
        layout, fmt = pyrogram_layout
        return _decode_pyrogram(text, layout, fmt, name)
    raise InvalidSessionString(f"{_expected_lengths(wanted)}; this one has {len(text)}")


def encode(session: Session, format: StringFormat | str) -> str:
    """The string the named client produces for `session` (see `encode_telethon`/`encode_pyrogram`)."""
    chosen = _format(format)
    if chosen is StringFormat.TELETHON:
        return encode_telethon(session)
    if chosen is StringFormat.PYROGRAM:
        return encode_pyrogram(session)
    raise InvalidArgument("format", "choose telethon or pyrogram")


def encode_telethon(session: Session) -> str:
    """Telethon's `StringSession.save()` for this session: needs dc id, address, port and auth key."""
    _check_session(session)
    dc_id = _required(session.dc_id, "dc_id", "Telethon")
    address = _required(session.server_address, "server_address", "Telethon")
    port = _required(session.port, "port", "Telethon")
    auth_key = _required(session.auth_key, "auth_key", "Telethon")
    if dc_id > 255:
        raise InvalidArgument("dc_id", f"{dc_id} does not fit the one byte Telethon strings hold")
    packed_ip = ipaddress.ip_address(address).packed
    payload = struct.pack(_TELETHON_STRUCT.format(len(packed_ip)), dc_id, packed_ip, port, auth_key)
    return TELETHON_VERSION + base64.urlsafe_b64encode(payload).decode("ascii")


def encode_pyrogram(session: Session) -> str:
    """Kurigram's `export_session_string()`: needs dc id, api id, auth key, user id and is_bot."""
    _check_session(session)
    dc_id = _required(session.dc_id, "dc_id", "Pyrogram")
    api_id = _required(session.api_id, "api_id", "Pyrogram")
    auth_key = _required(session.auth_key, "auth_key", "Pyrogram")
    user_id = _required(session.user_id, "user_id", "Pyrogram")
    is_bot = _required(session.is_bot, "is_bot", "Pyrogram")
    if dc_id > 255:
        raise InvalidArgument("dc_id", f"{dc_id} does not fit the one byte Pyrogram strings hold")
    payload = struct.pack(PYROGRAM_STRUCT, dc_id, api_id, session.test_mode, auth_key, user_id, is_bot)
    return base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=")


def complete(session: Session, format: StringFormat | str) -> Completed:
    """Fill what `format` needs and `session` lacks where that can be done honestly.

    Telethon: a missing address and port come from the DC table. Pyrogram: an unknown `is_bot` is
    taken to be False (Telethon does not record it). Nothing else is invented.
    """
    _check_session(session)
    chosen = _format(format)
    if chosen is StringFormat.TELETHON:
        if session.dc_id is None or (session.server_address is not None and session.port is not None):
            return Completed(session)
        default_address, default_port = dc_table.address_of(session.dc_id, session.test_mode)
        filled = []
        if session.server_address is None:
            filled.append("server_address")
        if session.port is None:
            filled.append("port")
        return Completed(
            replace(
                session,
                server_address=session.server_address or default_address,
                port=session.port or default_port,
            ),
            filled_from_dc_table=tuple(filled),
        )
    if session.is_bot is None:
        return Completed(replace(session, is_bot=False), assumed=("is_bot",))
    return Completed(session)


# -- decoding ------------------------------------------------------------------------------------


def _decode_telethon(text: str, layout: Layout, name: str) -> DecodedString:
    version, body = text[0], text[1:]
    if version != TELETHON_VERSION:
        raise InvalidSessionString(
            f"unknown Telethon session string version {version!r} (only {TELETHON_VERSION!r} exists)"
        )
    ip_length = 4 if layout is Layout.TELETHON_IPV4 else 16
    fmt = _TELETHON_STRUCT.format(ip_length)
    dc_id, packed_ip, port, auth_key = struct.unpack(fmt, _b64decode(body, struct.calcsize(fmt)))
    address = str(ipaddress.ip_address(packed_ip))
    known = dc_table.identify(address)
    test_mode = known is not None and known.test_mode
    session = _session(
        name=name,
        dc_id=dc_id,
        server_address=address,
        port=port,
        test_mode=test_mode,
        # Telethon treats an all-zero key as "no key" (`if any(key)`).
        auth_key=auth_key if any(auth_key) else None,
    )
    return DecodedString(
        session,
        layout,
        filled_from_dc_table=("test_mode",) if test_mode else (),
        missing=("api_id", "user_id", "is_bot"),
    )


def _decode_pyrogram(text: str, layout: Layout, fmt: str, name: str) -> DecodedString:
    values = struct.unpack(fmt, _b64decode(text, struct.calcsize(fmt)))
    if layout is Layout.PYROGRAM:
        dc_id, api_id, test_mode, auth_key, user_id, is_bot = values
    else:
        dc_id, test_mode, auth_key, user_id, is_bot = values
        api_id = None
    try:
        address, port = dc_table.address_of(dc_id, test_mode)
    except InvalidArgument as error:
        raise InvalidSessionString(f"invalid session string: {error}") from None
    session = _session(
        name=name,
        dc_id=dc_id,
        api_id=api_id,
        test_mode=test_mode,
        auth_key=auth_key,
        user_id=user_id,
        is_bot=is_bot,
        server_address=address,
        port=port,
    )
    return DecodedString(
        session,
        layout,
        filled_from_dc_table=("server_address", "port"),
        missing=() if api_id is not None else ("api_id",),
    )


def _b64decode(text: str, size: int) -> bytes:
    """Strict URL-safe base64 (padding optional) that must decode to exactly `size` bytes."""
    if not _BASE64.fullmatch(text):
        raise InvalidSessionString("the session string is not URL-safe base64")
    unpadded = text.rstrip("=")
    padded = unpadded + "=" * (-len(unpadded) % 4)
    if text != unpadded and text != padded:
        raise InvalidSessionString("the session string has wrong base64 padding")
    try:
        raw = base64.b64decode(padded.translate(str.maketrans("-_", "+/")), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSessionString("the session string is not valid base64") from None
    if len(raw) != size:
        raise InvalidSessionString(f"the session string decodes to {len(raw)} bytes, expected {size}")
    return raw


def _session(**fields: object) -> Session:
    try:
        return Session(**fields)  # type: ignore[arg-type]
    except InvalidArgument as error:
        raise InvalidSessionString(f"invalid session string: {error}") from None


# -- helpers -------------------------------------------------------------------------------------


def _format(value: StringFormat | str | None) -> StringFormat | None:
    if value is None or isinstance(value, StringFormat):
        return value
    try:
        return StringFormat(value)
    except ValueError:
        raise InvalidArgument("format", f"{value!r} is not telethon or pyrogram") from None


def _expected_lengths(wanted: StringFormat | None) -> str:
    telethon = " or ".join(str(n) for n in sorted(_TELETHON_LENGTHS))
    pyrogram = ", ".join(str(n) for n in sorted(_PYROGRAM_LENGTHS))
    if wanted is StringFormat.TELETHON:
        return f"a Telethon session string is {telethon} characters long"
    if wanted is StringFormat.PYROGRAM:
        return f"a Pyrogram session string is {pyrogram} characters long (without padding)"
    return f"a session string is {telethon} characters long (Telethon) or {pyrogram} (Pyrogram)"


def _check_session(session: Session) -> None:
    if not isinstance(session, Session):
        raise InvalidArgument("session", f"expected a Session, got {type(session).__name__}")


def _required(value: T | None, field: str, client: str) -> T:
    if value is None:
        raise InvalidArgument(field, f"is unknown, and {client} session strings need it")
    return value
