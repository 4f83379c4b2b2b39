from amiflow_runtime.alembic_env import run
from ingest.adapters.db import metadata

run(metadata, "ingest")
