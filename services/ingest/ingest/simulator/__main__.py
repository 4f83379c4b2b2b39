"""``python -m ingest.simulator``: see ingest.simulator.cli."""

from ingest.simulator.cli import main

raise SystemExit(main())
