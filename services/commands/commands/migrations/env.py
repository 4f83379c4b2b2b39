from amiflow_runtime.alembic_env import run
from commands.adapters.db import metadata

run(metadata, "commands")
