from amiflow_runtime.alembic_env import run
from billing.adapters.db import metadata

run(metadata, "billing")
