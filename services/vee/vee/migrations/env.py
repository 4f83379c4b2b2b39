from amiflow_runtime.alembic_env import run
from vee.adapters import alarms_db, registry_db, series_db  # noqa: F401 - their tables join the metadata
from vee.adapters.db import metadata

run(metadata, "vee")
