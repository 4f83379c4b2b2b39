from amiflow_runtime.alembic_env import run
from ingest.adapters import registry_tables  # noqa: F401 - puts the registry's tables on metadata
from ingest.adapters.db import metadata

run(metadata, "ingest")
