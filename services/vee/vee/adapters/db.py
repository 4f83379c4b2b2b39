"""VEE's database metadata and the runtime's inbox and outbox; the tables live beside it
(series_db, registry_db, alarms_db)."""

from __future__ import annotations

from amiflow_runtime.db import inbox_table, outbox_table
from sqlalchemy import MetaData

metadata = MetaData()
inbox = inbox_table(metadata)
outbox = outbox_table(metadata)
