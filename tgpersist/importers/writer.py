"""Storing a `SessionSnapshot` under its name in ONE transaction: all of it, or (on any error) nothing.

The account's repositories run inside one `AsyncSession` transaction (`Store.account(session=...)`)
that is committed once at the end. On SQLite it begins as a write (`BEGIN IMMEDIATE`), so no other
writer can slip in between the existence check and the writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from tgpersist.errors import TgPersistError
from tgpersist.importers.snapshot import SessionSnapshot
from tgpersist.sql import engines
from tgpersist.store import Store

#: Peers per `save_many` call; progress is reported after each batch.
BATCH = 5000

#: Called with (peers stored so far, peers in total).
Progress = Callable[[int, int], None]


class SessionExists(TgPersistError):
    """The target name already holds a session and replacing it was not asked for."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"a session named {name!r} already exists (replace it explicitly to overwrite)")


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import stored, and what it had to fill in or leave out."""

    name: str
    source: str
    peers: int
    channels: int
    update_state: bool
    replaced: bool
    filled_from_dc_table: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    sent_files: int = 0


async def write_snapshot(
    store: Store, snapshot: SessionSnapshot, *, replace: bool = False, progress: Progress | None = None
) -> ImportResult:
    """Store `snapshot` as session `snapshot.session.name`; an existing one only with `replace=True`."""
    name = snapshot.session.name
    peers = snapshot.peers
    writer = store.engine.execution_options(**{engines.WRITE: True})
    async with AsyncSession(bind=writer, expire_on_commit=False) as db, db.begin():
        account = store.account(name, session=db)
        replaced = await account.session.load() is not None
        if replaced:
            if not replace:
                raise SessionExists(name)
            await account.session.delete()
        await account.session.save(snapshot.session)
        if progress is not None:
            progress(0, len(peers))
        done = 0
        for end in _batch_ends(len(peers)):
            await account.peers.save_many(peers[done:end])
            done = end
            if progress is not None:
                progress(done, len(peers))
        if snapshot.update_state is not None:
            await account.updates.save_state(snapshot.update_state)
        if snapshot.channels:
            await account.updates.save_channels(list(snapshot.channels))
        if snapshot.sent_files:
            await account.files.save_many(snapshot.sent_files)
        for entry in snapshot.dc_auth:
            await account.dc_auth.save(entry)
    return ImportResult(
        name=name,
        source=snapshot.source,
        peers=len(peers),
        channels=len(snapshot.channels),
        update_state=snapshot.update_state is not None,
        replaced=replaced,
        filled_from_dc_table=snapshot.filled_from_dc_table,
        notes=snapshot.notes,
        sent_files=len(snapshot.sent_files),
    )


def _batch_ends(total: int) -> list[int]:
    return [*range(BATCH, total, BATCH), total] if total else []
