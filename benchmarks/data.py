"""The same users for every implementation: tgpersist `Peer`s, Telethon `User` objects, Kurigram rows,
and the raw rows tgpersist's own statements take (so the raw baselines write exactly what we write)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telethon.tl.types import User

from tgpersist import Peer, PeerType

#: Ids start here so they look like real user ids.
BASE_ID = 5_000_000_000


@dataclass
class Users:
    peers: list[Peer]
    telethon: list[User]
    kurigram_peers: list[tuple[int, int, str, str | None]]
    kurigram_usernames: list[tuple[int, list[str | None]]]

    def __len__(self) -> int:
        return len(self.peers)


def user_fields(n: int, generation: int) -> list[dict[str, Any]]:
    """`n` users: every one with an access hash, a first name and a username; every fifth a phone.
    A new `generation` changes access hashes and names (an overwrite), never ids or usernames."""
    return [
        {
            "id": BASE_ID + i,
            "access_hash": (i * 7919 + generation * 104729) % (2**62) + 1,
            "first_name": f"User {i} g{generation}",
            "username": f"user_{i}",
            "phone": f"44770{i:07d}" if i % 5 == 0 else None,
        }
        for i in range(n)
    ]


def users(n: int, generation: int = 0) -> Users:
    fields = user_fields(n, generation)
    return Users(
        peers=[
            Peer(
                f["id"],
                PeerType.USER,
                access_hash=f["access_hash"],
                username=f["username"],
                first_name=f["first_name"],
                phone_number=f["phone"],
            )
            for f in fields
        ],
        telethon=[
            User(
                id=f["id"],
                access_hash=f["access_hash"],
                first_name=f["first_name"],
                username=f["username"],
                phone=f["phone"],
            )
            for f in fields
        ],
        kurigram_peers=[(f["id"], f["access_hash"], "user", f["phone"]) for f in fields],
        kurigram_usernames=[(f["id"], [f["username"]]) for f in fields],
    )


def raw_rows(data: Users, session: str, stamp: Any) -> list[tuple[Any, ...]]:
    """The peer rows `PeerRepository.save_many` writes for `data`, with the shared columns in front
    (`PEER_SHARED + PEER_COLUMNS`), so that the raw baselines write exactly what we write. These users
    have one username each, so nothing goes to the usernames table."""
    return sorted(
        (
            session,
            stamp,
            p.id,
            p.type.value,
            p.access_hash,
            p.first_name,
            p.last_name,
            p.title,
            p.phone_number,
            p.phone_number,  # digits only already
            p.is_bot,
            p.photo_id,
            p.language,
            p.username,
            None if p.username is None else p.username.lower(),
        )
        for p in data.peers
    )
