"""commands: the command log, devices, cut-off policies, exemptions, automation rules and proposals

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
        "commands",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("command_id", sa.String(36), primary_key=True),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=True),
        sa.Column("batch_id", sa.String(64), nullable=True),
        sa.Column("idempotency_key", sa.String(128), nullable=True),
        sa.Column("requested_at", UtcDateTime(), nullable=False),
        sa.Column("next_due_at", UtcDateTime(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_commands_idempotency_key"),
    )
    op.create_index("ix_commands_device", "commands", ["tenant_id", "device_id", "state"])
    op.create_index("ix_commands_due", "commands", ["next_due_at"])
    op.create_index("ix_commands_requested", "commands", ["tenant_id", "requested_at"])
    op.create_table(
        "command_events",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("command_id", sa.String(36), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
    )
    op.create_table(
        "devices",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("device_id", sa.String(128), primary_key=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("device", sa.Text(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    # Apart from devices: a status report may come before the registry names the device.
    op.create_table(
        "device_states",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("device_id", sa.String(128), primary_key=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    for name, key in (("cut_off_policies", "policy_key"), ("automation_rules", "rule_id")):
        op.create_table(
            name,
            sa.Column("tenant_id", sa.String(64), primary_key=True),
            sa.Column(key, sa.String(128), primary_key=True),
            sa.Column("document", sa.Text(), nullable=False),
            sa.Column("updated_by", sa.String(128), nullable=False),
            sa.Column("updated_at", UtcDateTime(), nullable=False),
        )
    op.create_table(
        "exemptions",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "proposals",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("proposal_id", sa.String(36), primary_key=True),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("command_id", sa.String(36), nullable=True),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("proposed_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("proposals", "exemptions", "automation_rules", "cut_off_policies", "device_states", "devices",
                  "command_events"):
        op.drop_table(table)
    op.drop_index("ix_commands_requested", "commands")
    op.drop_index("ix_commands_due", "commands")
    op.drop_index("ix_commands_device", "commands")
    op.drop_table("commands")
