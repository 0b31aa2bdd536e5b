"""Reading one stored account back as a `SessionSnapshot`, consistently, in one read transaction."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from tgpersist.domain import Peer
from tgpersist.errors import TgPersistError
from tgpersist.importers.snapshot import SessionSnapshot
from tgpersist.store import Store


class SessionNotFound(TgPersistError):
    """No session of that name is stored."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no session named {name!r}")


async def read_account(
    store: Store, name: str, progress: Callable[[int], None] | None = None
) -> SessionSnapshot:
    """The session `name` with its peers, update and channel states and sent files (`SessionNotFound`
    if there is none), in one read transaction; `progress(peers read so far)` after each page."""
    async with AsyncSession(bind=store.engine) as db, db.begin():
        account = store.account(name, session=db)
        session = await account.session.load()
        if session is None:
            raise SessionNotFound(name)
        peers: list[Peer] = []
        async for page in account.peers.pages():
            peers += page
            if progress is not None:
                progress(len(peers))
        state = await account.updates.load_state()
        channels = await account.updates.list_channels()
        sent_files = await account.files.list()
        dc_auth = await account.dc_auth.list()
    return SessionSnapshot(
        session=session,
        source=f"tgpersist session {name!r}",
        peers=tuple(peers),
        update_state=state,
        channels=tuple(channels),
        sent_files=tuple(sent_files),
        dc_auth=tuple(dc_auth),
    )
