from amiflow_runtime.alembic_env import run
from identity.adapters.db import metadata

run(metadata, "identity")
