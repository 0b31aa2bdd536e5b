"""`tgpersist sessions list` and `tgpersist session show|delete NAME`."""

from __future__ import annotations

import argparse
from typing import Any

from tgpersist.cli.common import CommandError, add_url, open_store
from tgpersist.domain import Session
from tgpersist.errors import UnreadableRow
from tgpersist.repositories.lease import LeaseInfo


def register(sub: Any) -> Any:
    """Add `sessions` and `session`; returns the `session` group's actions, for `transfer` to extend."""
    group = sub.add_parser("sessions", help="list stored sessions")
    actions = group.add_subparsers(dest="sessions_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list sessions: DC, user, and who holds each one's lease")
    add_url(listing)
    listing.set_defaults(handler=list_sessions)

    session = sub.add_parser("session", help="inspect or manage one session")
    actions = session.add_subparsers(dest="session_command", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="show a session (never its auth key)")
    show.add_argument("name")
    add_url(show)
    show.set_defaults(handler=show_session)
    delete = actions.add_parser("delete", help="delete a session and every row scoped to it")
    delete.add_argument("name")
    add_url(delete)
    delete.set_defaults(handler=delete_session)
    return actions


def describe(session: Session) -> str:
    who = f"user {session.user_id}" if session.user_id else "no user"
    if session.username:
        who += f" (@{session.username})"
    key = "auth key set" if session.auth_key else "no auth key"
    return f"dc {session.dc_id or '-'}, {who}, {key}{', test' if session.test_mode else ''}"


def describe_lease(holder: LeaseInfo | None) -> str:
    if holder is None:
        return "free"
    until = holder.expires_at.isoformat(timespec="seconds")
    return f"held by {holder.owner} until {until} (token {holder.token})"


async def list_sessions(args: argparse.Namespace) -> int:
    async with await open_store(args) as store:
        for name in await store.list_sessions():
            account = store.account(name)
            session = await account.session.load()
            try:
                lease = describe_lease(await account.session.holder())
            except UnreadableRow as error:
                lease = f"unreadable lease ({error.problem}; the next acquire takes it over)"
            print(f"{name}\t{describe(session) if session else '-'}\t{lease}")
    return 0


async def show_session(args: argparse.Namespace) -> int:
    async with await open_store(args) as store:
        account = store.account(args.name)
        session = await account.session.load()
        if session is None:
            raise CommandError(f"no session named {args.name!r}")
        print(f"name:        {session.name}")
        for field in ("dc_id", "server_address", "port", "test_mode", "api_id", "user_id", "is_bot"):
            print(f"{field + ':':<13}{getattr(session, field)}")
        for field in ("first_name", "last_name", "username", "date", "takeout_id"):
            print(f"{field + ':':<13}{getattr(session, field)}")
        print(f"auth_key:    {'<set, 256 bytes>' if session.auth_key else '<none>'}")
        print(f"api_hash:    {'<set>' if session.api_hash else '<none>'}")
        print(f"peers:       {await account.peers.count()}")
        print(f"dc_auth:     {len(await account.dc_auth.list())}")
        state = await account.updates.load_state()
        print(f"update state: {state if state else '-'}")
        print(f"channels:    {len(await account.updates.list_channels())}")
        print(f"created_at:  {session.created_at}")
        print(f"updated_at:  {session.updated_at}")
    return 0


async def delete_session(args: argparse.Namespace) -> int:
    async with await open_store(args) as store:
        if not await store.account(args.name).session.delete():
            raise CommandError(f"no session named {args.name!r}")
        print(f"deleted {args.name}")
    return 0
