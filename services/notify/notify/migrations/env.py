from amiflow_runtime.alembic_env import run
from notify.adapters.db import metadata

run(metadata, "notify")
