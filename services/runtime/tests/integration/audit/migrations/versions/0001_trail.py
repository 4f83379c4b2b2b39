"""audit tests: inbox, outbox and the audit trail, as every service migrates them

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op
from amiflow_runtime.audit_db import create_audit_table
from amiflow_runtime.migrations import create_runtime_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_runtime_tables(op)
    create_audit_table(op)


def downgrade() -> None:
    raise NotImplementedError("test databases are thrown away")
