"""csrf secret: the installation signs the booking pages' CSRF tokens without SLOTGRAPH_CSRF_SECRET

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 13:10:00
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_SECRETS = sa.table("instance_secrets", sa.column("name", sa.String), sa.column("value", sa.String))


def upgrade() -> None:
    # One random secret per installation, shared by every server process and kept across
    # restarts (web/security.py): before, the pages' tokens were unsigned unless the operator
    # set SLOTGRAPH_CSRF_SECRET, so a cookie planted by a sibling subdomain passed.
    op.bulk_insert(_SECRETS, [{"name": "csrf", "value": secrets.token_hex(32)}])


def downgrade() -> None:
    op.execute(_SECRETS.delete().where(_SECRETS.c.name == "csrf"))
