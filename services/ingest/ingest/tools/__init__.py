"""Command-line tools of the ingest service (run with ``python -m ingest.tools.<tool>``)."""
