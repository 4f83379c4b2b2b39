"""billing: payment orders (the customers' checkout) and the account directory (holders and open/closed, for
the operators' account list), filled from the stored account events

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from amiflow_runtime.db import ExactDecimal, UtcDateTime
from amiflow_schemas import decode_event
from amiflow_schemas.events.accounts import AccountClosed, AccountOpened

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TENANT = ("tenant_id", sa.String(64))
_BACKFILL_BATCH = 1000


def upgrade() -> None:
    op.create_table(
        "payment_orders",
        sa.Column(*TENANT, primary_key=True), sa.Column("order_id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False), sa.Column("amount", ExactDecimal(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False), sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False), sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=True), sa.Column("paid_at", UtcDateTime(), nullable=True),
        sa.Column("payment_event_id", sa.String(36), nullable=True),
        sa.Column("provider_transaction_id", sa.String(128), nullable=True),
    )
    op.create_index("payment_orders_by_account", "payment_orders", ["tenant_id", "account_id", "created_at"])
    op.create_index("payment_orders_by_key", "payment_orders", ["tenant_id", "account_id", "idempotency_key"],
                    unique=True)
    op.create_table(
        "account_directory",
        sa.Column(*TENANT, primary_key=True), sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("customer_kind", sa.String(32), nullable=False), sa.Column("status", sa.String(16), nullable=False),
        sa.Column("opened_at", UtcDateTime(), nullable=False), sa.Column("closed_at", UtcDateTime(), nullable=True),
    )
    op.create_index("account_directory_by_customer", "account_directory", ["tenant_id", "customer_id"])
    _fill_directory_from_account_events()


def _fill_directory_from_account_events() -> None:
    # The events decoded in Python (upcasters included): the two databases spell JSON extraction differently.
    # Only openings and closings are read; the LIKE spares decoding every link and settings change.
    events = sa.table("account_events", sa.column("tenant_id", sa.String), sa.column("account_id", sa.String),
                      sa.column("seq", sa.Integer), sa.column("envelope", sa.Text))
    directory = sa.table("account_directory", sa.column("tenant_id", sa.String), sa.column("account_id", sa.String),
                         sa.column("customer_id", sa.String), sa.column("customer_kind", sa.String),
                         sa.column("status", sa.String), sa.column("opened_at", UtcDateTime()),
                         sa.column("closed_at", UtcDateTime()))
    bind = op.get_bind()
    rows = bind.execute(sa.select(events.c.tenant_id, events.c.envelope).where(sa.or_(
        events.c.envelope.like('%"AccountOpened"%'), events.c.envelope.like('%"AccountClosed"%'))).order_by(
        events.c.tenant_id, events.c.account_id, events.c.seq)).all()
    found: dict[tuple[str, str], dict[str, object]] = {}
    for row in rows:
        payload = decode_event(row.envelope.encode()).payload
        if isinstance(payload, AccountOpened):
            found[row.tenant_id, payload.account_id] = {
                "tenant_id": row.tenant_id, "account_id": payload.account_id, "customer_id": payload.customer_id,
                "customer_kind": payload.customer_kind.value, "status": "open", "opened_at": payload.opened_at,
                "closed_at": None}
        elif isinstance(payload, AccountClosed) and (row.tenant_id, payload.account_id) in found:
            found[row.tenant_id, payload.account_id].update(status="closed", closed_at=payload.closed_at)
    filled = list(found.values())
    for first in range(0, len(filled), _BACKFILL_BATCH):
        bind.execute(sa.insert(directory), filled[first:first + _BACKFILL_BATCH])


def downgrade() -> None:
    op.drop_table("account_directory")
    op.drop_index("payment_orders_by_key", "payment_orders")
    op.drop_index("payment_orders_by_account", "payment_orders")
    op.drop_table("payment_orders")
