from amiflow_runtime.alembic_env import run
from ingest.adapters import (
    registry_tables,  # noqa: F401 - puts the registry's tables on metadata
    reports_db,  # noqa: F401 - and the meters' last reports
)
from ingest.adapters.db import metadata

run(metadata, "ingest")
