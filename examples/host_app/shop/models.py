"""The shop's own declarative models, with a foreign key into tgpersist's session table.

The key points at tgpersist's column object (not the string "tgpersist_sessions.name"), so SQLAlchemy
resolves it although tgpersist's table lives in tgpersist's `MetaData`, not in ours.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from tgpersist.models import default_models

#: tgpersist's session table (default placement: prefix `tgpersist_`, no schema).
TGPERSIST_SESSIONS = default_models.table(default_models.Session)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "pk": "%(table_name)s_pk",
            "fk": "%(table_name)s_%(column_0_name)s_fk",
            "uq": "%(table_name)s_%(column_0_name)s_uq",
            "ix": "%(table_name)s_%(column_0_name)s_ix",
        }
    )


class Customer(Base):
    __tablename__ = "shop_customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    bots: Mapped[list[BotAccount]] = relationship(back_populates="customer")


class BotAccount(Base):
    """A customer's bot; its MTProto session (auth key, peers, updates...) is kept by tgpersist."""

    __tablename__ = "shop_bots"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey(Customer.id, ondelete="CASCADE"))
    # RESTRICT: a bot's tgpersist session cannot be deleted while the bot is registered.
    session_name: Mapped[str] = mapped_column(
        ForeignKey(TGPERSIST_SESSIONS.c.name, ondelete="RESTRICT"), unique=True
    )
    customer: Mapped[Customer] = relationship(back_populates="bots")
