"""Alembic env of the audit tests' small service: the runtime's tables and the audit trail, nothing else."""

from amiflow_runtime.alembic_env import run

run(None, "audit-test")
