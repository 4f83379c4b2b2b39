"""notify: contacts and their preferences, webhook subscriptions, the notification log with its
delivery attempts, and each account's balance state for the daily reminder

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from amiflow_runtime.db import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("contact_id", sa.String(64), primary_key=True),
        sa.Column("audience", sa.String(16), nullable=False),  # customer, operator
        sa.Column("account_id", sa.String(64), nullable=True),  # a customer's account
        sa.Column("role", sa.String(64), nullable=True),  # an operator's role
        sa.Column("site", sa.String(64), nullable=True),  # an operator's site (None: every site)
        sa.Column("document", sa.Text(), nullable=False),  # name, addresses, language, quiet hours, opt-outs
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_contacts_account", "contacts", ["tenant_id", "account_id"])
    op.create_table(
        "webhook_subscriptions",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("subscription_id", sa.String(64), primary_key=True),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("topics", sa.Text(), nullable=False),  # JSON list
        sa.Column("secret", sa.String(200), nullable=False),  # signs every delivery; shown once at creation
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "notifications",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("notification_id", sa.String(36), primary_key=True),
        sa.Column("topic", sa.String(32), nullable=False),
        sa.Column("audience", sa.String(16), nullable=False),
        sa.Column("recipient_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(128), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=True),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column("urgency", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=True),  # None once it is final
        sa.Column("lease_until", UtcDateTime(), nullable=True),  # a worker is sending it until then
        sa.Column("cause_event_id", sa.String(36), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),  # the planned notification (recipient, context)
        sa.Column("provider_answer", sa.Text(), nullable=True),
        sa.Column("provider_message_id", sa.String(200), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
        sa.UniqueConstraint("tenant_id", "dedupe_key", "recipient_id", "channel", name="uq_notifications_dedupe"),
    )
    op.create_index("ix_notifications_due", "notifications", ["next_attempt_at"])
    op.create_index("ix_notifications_account", "notifications", ["tenant_id", "account_id", "created_at"])
    op.create_table(
        "delivery_attempts",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("notification_id", sa.String(36), primary_key=True),
        sa.Column("attempt", sa.Integer(), primary_key=True),
        sa.Column("attempted_at", UtcDateTime(), nullable=False),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.Column("retryable", sa.Boolean(), nullable=False),
        sa.Column("provider_answer", sa.Text(), nullable=False),
    )
    op.create_table(
        "account_states",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),  # normal, low, depleted
        sa.Column("since", UtcDateTime(), nullable=False),
        sa.Column("last_event", sa.Text(), nullable=False),  # the balance event, for the reminder's text
        sa.Column("last_reminded_on", sa.Date(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("account_states")
    op.drop_table("delivery_attempts")
    op.drop_index("ix_notifications_account", "notifications")
    op.drop_index("ix_notifications_due", "notifications")
    op.drop_table("notifications")
    op.drop_table("webhook_subscriptions")
    op.drop_index("ix_contacts_account", "contacts")
    op.drop_table("contacts")
