"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tgpersist.migrate import migration_placement

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    p = migration_placement()
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    p = migration_placement()
    ${downgrades if downgrades else "pass"}
