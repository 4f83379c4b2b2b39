"""Composition root of the console: `python -m console.main api` (it has no worker and no database)."""

from __future__ import annotations

import argparse
import sys

from amiflow_runtime.http import serve
from amiflow_runtime.process import configure_process

from console.app import build_app
from console.config import ConsoleSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the amiflow operator console and customer portal")
    parser.add_argument("role", choices=["api"], help="the console's only process")
    args = parser.parse_args(argv)
    try:
        settings = ConsoleSettings()
    except ValueError as exc:  # pydantic ValidationError: refuse to start with a clear reason
        print(f"invalid settings: {exc}", file=sys.stderr)  # noqa: T201 - logging is not set up yet
        return 2
    configure_process(settings, args.role)
    serve(build_app(settings), settings, settings.resolved_api_port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
