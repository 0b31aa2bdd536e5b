"""The shop's code: its rows and tgpersist's rows written in one transaction of the shop's own session.

python -m shop.app sqlite+aiosqlite:///shop.db     (after both migrations, see README.md)
"""

from __future__ import annotations

import asyncio
import sys

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

import tgpersist
from shop.models import BotAccount, Customer


def connect(url: str) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession], tgpersist.Store]:
    """The shop's engine and sessions, and a tgpersist store embedded on the same engine."""
    engine = create_async_engine(url)
    tgpersist.configure_engine(engine)  # SQLite: foreign keys on, BEGIN IMMEDIATE for writers
    return engine, async_sessionmaker(engine, expire_on_commit=False), tgpersist.Store(engine)


async def register_bot(
    sessions: async_sessionmaker[AsyncSession], store: tgpersist.Store, email: str, login: tgpersist.Session
) -> int:
    """Create the customer, their bot and the bot's tgpersist session atomically; return the bot id."""
    async with sessions() as db, db.begin():
        customer = Customer(email=email)
        db.add(customer)
        await store.account(login.name, session=db).session.save(login)
        bot = BotAccount(customer=customer, session_name=login.name)
        db.add(bot)
        await db.flush()
        return bot.id


async def list_bots(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, str]]:
    """(customer email, session name) of every registered bot."""
    async with sessions() as db:
        rows = await db.execute(
            select(Customer.email, BotAccount.session_name).join(BotAccount.customer).order_by(BotAccount.id)
        )
        return [(email, name) for email, name in rows]


async def main(url: str) -> None:
    engine, sessions, store = connect(url)
    try:
        login = tgpersist.Session("shop-bot-1", dc_id=2, auth_key=bytes(256), is_bot=True)
        await register_bot(sessions, store, "owner@example.com", login)
        for email, name in await list_bots(sessions):
            session = await store.account(name).session.load()
            print(f"{email}: bot session {name!r} on DC {session.dc_id if session else '?'}")
    finally:
        await store.close()  # leaves the shop's engine alone
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "sqlite+aiosqlite:///shop.db"))
