"""Field checks shared by the domain types; each raises `InvalidArgument` naming the field.

Checks run when a domain value is constructed, so a value that exists is a value the store accepts.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from tgpersist.errors import InvalidArgument, UnreadableRow

T = TypeVar("T")

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1
AUTH_KEY_LENGTH = 256
MAX_TEXT = 1024
MAX_NAME = 255
MAX_BLOB = 16 * 1024 * 1024
#: The longest duration any argument may give (TTLs, leases, delays): ten years, in seconds. Longer
#: ones are mistakes (a millisecond timestamp passed as seconds) that would overflow dates later.
MAX_SECONDS = 10 * 365 * 24 * 3600
#: JSON data (conversation state) may nest this deep and hold this many values in all.
MAX_JSON_DEPTH = 64
MAX_JSON_ITEMS = 100_000

_USERNAME = re.compile(r"[A-Za-z0-9_]{1,64}")
_PHONE = re.compile(r"\+?[0-9][0-9 ]{0,31}")


def check_int(field: str, value: Any, low: int = INT64_MIN, high: int = INT64_MAX) -> int:
    """An integer (not a bool) within [low, high]; the default range is signed 64-bit."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(field, f"expected an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidArgument(field, f"{value} is outside {low}..{high}")
    return value


def check_optional_int(field: str, value: Any, low: int = INT64_MIN, high: int = INT64_MAX) -> int | None:
    return None if value is None else check_int(field, value, low, high)


def check_bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(field, f"expected a bool, got {type(value).__name__}")
    return value


def check_optional_bool(field: str, value: Any) -> bool | None:
    return None if value is None else check_bool(field, value)


def check_text(field: str, value: Any, max_length: int = MAX_TEXT, *, empty: bool = True) -> str:
    """A string that PostgreSQL and SQLite both store verbatim: valid UTF-8, no NUL, bounded."""
    if not isinstance(value, str):
        raise InvalidArgument(field, f"expected a string, got {type(value).__name__}")
    if not empty and not value:
        raise InvalidArgument(field, "must not be empty")
    if len(value) > max_length:
        raise InvalidArgument(field, f"is {len(value)} characters long, the limit is {max_length}")
    if "\x00" in value:
        raise InvalidArgument(field, "contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(field, "is not valid Unicode (lone surrogate)") from None
    return value


def check_optional_text(field: str, value: Any, max_length: int = MAX_TEXT) -> str | None:
    return None if value is None else check_text(field, value, max_length)


def check_name(field: str, value: Any) -> str:
    """A scope key such as a session name: 1-255 characters."""
    return check_text(field, value, MAX_NAME, empty=False)


def check_bytes(field: str, value: Any, max_length: int = MAX_BLOB) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidArgument(field, f"expected bytes, got {type(value).__name__}")
    data = bytes(value)
    if len(data) > max_length:
        raise InvalidArgument(field, f"is {len(data)} bytes long, the limit is {max_length}")
    return data


def check_optional_bytes(field: str, value: Any, max_length: int = MAX_BLOB) -> bytes | None:
    return None if value is None else check_bytes(field, value, max_length)


def check_auth_key(field: str, value: Any) -> bytes | None:
    """None or exactly 256 bytes; the message never contains the key."""
    if value is None:
        return None
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidArgument(field, f"expected bytes, got {type(value).__name__}")
    data = bytes(value)
    if len(data) != AUTH_KEY_LENGTH:
        raise InvalidArgument(field, f"must be exactly {AUTH_KEY_LENGTH} bytes, got {len(data)}")
    return data


def check_dc_id(field: str, value: Any, test_mode: bool | None) -> int:
    """Production DCs are 1-5; test mode also allows the 10001-10005 ids some clients use."""
    dc_id = check_int(field, value, 1, INT32_MAX)
    if 1 <= dc_id <= 5 or (test_mode and 10001 <= dc_id <= 10005):
        return dc_id
    allowed = "1..5 or 10001..10005 (test mode)" if test_mode else "1..5"
    raise InvalidArgument(field, f"{dc_id} is not a Telegram DC id ({allowed})")


def check_port(field: str, value: Any) -> int:
    return check_int(field, value, 1, 65535)


def check_address(field: str, value: Any, version: int | None = None) -> str:
    """IPv4 or IPv6 text, returned in canonical form."""
    text = check_text(field, value, 64, empty=False)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(field, f"{text!r} is not an IPv4 or IPv6 address") from None
    if version is not None and address.version != version:
        raise InvalidArgument(field, f"{text!r} is not an IPv{version} address")
    return str(address)


def check_optional_address(field: str, value: Any, version: int | None = None) -> str | None:
    return None if value is None else check_address(field, value, version)


def check_api_hash(field: str, value: Any) -> str | None:
    """None or the 32 hexadecimal characters Telegram issues; the message never shows the value."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(field, f"expected a string, got {type(value).__name__}")
    if len(value) != 32 or not all(c in "0123456789abcdefABCDEF" for c in value):
        raise InvalidArgument(field, "must be 32 hexadecimal characters")
    return value


def check_username(field: str, value: Any) -> str:
    text = check_text(field, value, 64, empty=False)
    if not _USERNAME.fullmatch(text):
        raise InvalidArgument(field, f"{text[:64]!r} is not a Telegram username (letters, digits, _)")
    return text


def check_phone(field: str, value: Any) -> str:
    text = check_text(field, value, 33, empty=False)
    if not _PHONE.fullmatch(text):
        raise InvalidArgument(field, f"{text!r} is not a phone number (digits, optional + and spaces)")
    return text


def phone_key(phone: str) -> str:
    """What phone lookups compare: the digits only."""
    return "".join(c for c in phone if c.isdigit())


def check_seconds(field: str, value: Any, *, zero: bool = False, maximum: float = MAX_SECONDS) -> float:
    """A duration in seconds (a number or a `timedelta`): finite, positive (or zero if `zero`), and at
    most `maximum` (default `MAX_SECONDS`); returned as float seconds."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(field, f"expected seconds or a timedelta, got {type(value).__name__}")
    else:
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
    if not math.isfinite(seconds):
        raise InvalidArgument(field, "must be a finite number of seconds")
    if seconds < 0 or (seconds == 0 and not zero):
        raise InvalidArgument(field, "must not be negative" if zero else "must be positive")
    if seconds > maximum:
        raise InvalidArgument(field, f"{seconds:g} seconds is more than the maximum of {maximum:g}")
    return seconds


def check_duration(field: str, value: Any, *, zero: bool = False, maximum: float = MAX_SECONDS) -> timedelta:
    """`check_seconds` as a `timedelta`."""
    return timedelta(seconds=check_seconds(field, value, zero=zero, maximum=maximum))


#: Timestamps must leave this much room to datetime's limits, so that adding a duration of at most
#: `MAX_SECONDS` or converting between time zones never overflows.
_DATETIME_MARGIN = timedelta(days=1)


def check_datetime(field: str, value: Any) -> datetime:
    """A `datetime` (naive ones are taken as UTC) between years 1 and 9999 with a day to spare,
    returned in UTC."""
    if not isinstance(value, datetime):
        raise InvalidArgument(field, f"expected a datetime, got {type(value).__name__}")
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        ok = datetime.min.replace(tzinfo=UTC) + _DATETIME_MARGIN <= utc
        ok = ok and utc <= datetime.max.replace(tzinfo=UTC) - _DATETIME_MARGIN
    except (OverflowError, ValueError):
        ok = False
    if not ok:
        raise InvalidArgument(field, "is outside the range of dates that can be stored")
    return utc


def check_json(
    field: str,
    value: Any,
    *,
    max_depth: int = MAX_JSON_DEPTH,
    max_items: int = MAX_JSON_ITEMS,
    max_chars: int,
) -> None:
    """JSON-able data nested at most `max_depth` deep, with at most `max_items` values and `max_chars`
    characters of text in all. Walked without recursion, so no input can raise `RecursionError`."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    items = chars = 0
    while stack:
        node, depth = stack.pop()
        items += 1
        if items > max_items:
            raise InvalidArgument(field, f"holds more than {max_items} values")
        if isinstance(node, str):
            chars += len(node)
        elif isinstance(node, list | tuple | dict):
            if depth >= max_depth:
                raise InvalidArgument(field, f"nests deeper than {max_depth} levels")
            if isinstance(node, dict):
                for key, item in node.items():
                    chars += len(key) if isinstance(key, str) else 0
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in node)
        if chars > max_chars:
            raise InvalidArgument(field, f"holds more than {max_chars} characters of text")


def read_back(session: str, build: Callable[..., T], *args: Any, field: str = "row", **kwargs: Any) -> T:
    """`build(*args, **kwargs)` on values read from the database, a failed check reported as
    `UnreadableRow` naming the session and the field (a row written by an older version or by hand)."""
    try:
        return build(*args, **kwargs)
    except InvalidArgument as error:
        raise UnreadableRow(session, error.field, error.problem) from None
    except (ValueError, OverflowError, RecursionError, TypeError, LookupError) as error:
        raise UnreadableRow(session, field, type(error).__name__) from None


def error_text(field: str, error: Any, limit: int) -> str:
    """An error message to store: a string, or an exception as `Type: message`; cut to its first
    `limit` characters, NUL and lone surrogates (which no database stores) replaced with U+FFFD."""
    if isinstance(error, BaseException):
        try:
            text = str(error)
        except Exception:  # a hostile __str__ must not stop a worker from recording the failure
            text = "<unprintable>"
        message = f"{type(error).__name__}: {text}" if text else type(error).__name__
    elif isinstance(error, str):
        message = str(error)
    else:
        raise InvalidArgument(field, f"expected a string or an exception, got {type(error).__name__}")
    return "".join("\ufffd" if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in message[:limit])
