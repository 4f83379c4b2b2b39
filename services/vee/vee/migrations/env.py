from amiflow_runtime.alembic_env import run
from vee.adapters.db import metadata

run(metadata, "vee")
