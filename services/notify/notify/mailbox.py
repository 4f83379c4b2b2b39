"""``python -m notify.mailbox``: a local SMTP server that keeps every message as an .eml file.

`make run` starts it as the demo tenant's e-mail provider, so reminders, receipts and alarms can be
read in data/mailbox/ without a real mail server; a production tenant names its SMTP relay in
NOTIFY_TENANT_CHANNELS instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import uuid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from amiflow_runtime.logs import configure_logging

log = logging.getLogger("notify.mailbox")


class Mailbox:
    """Writes each accepted message to ``folder`` as <time>-<id>.eml."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = self.folder / f"{uuid.uuid4().hex}.eml"
        name.write_bytes(envelope.original_content or envelope.content)
        log.info("mail from %s to %s kept as %s", envelope.mail_from, ", ".join(envelope.rcpt_tos), name.name)
        return "250 2.0.0 kept"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m notify.mailbox", description=__doc__)
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--dir", type=Path, default=Path("data/mailbox"))
    args = parser.parse_args(argv)
    configure_logging("notify", "mailbox", fmt=os.environ.get("LOG_FORMAT", "json"))
    controller = Controller(Mailbox(args.dir), hostname="127.0.0.1", port=args.port)
    controller.start()
    log.info("mailbox listening on 127.0.0.1:%d, keeping mail in %s", args.port, args.dir)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
