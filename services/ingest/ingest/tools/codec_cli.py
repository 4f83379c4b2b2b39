"""Decode a meter frame to JSON, or build a request frame, from the command line.

    python -m ingest.tools.codec_cli decode "FE FE 68 10 ..." [--profile NAME]
    python -m ingest.tools.codec_cli encode valve-close --protocol cjt188 --address 00000805000001
    python -m ingest.tools.codec_cli encode time-sync --protocol dlt645 --at 2026-07-01T08:00:00

Exit status: 0 done, 1 the frame or the request was refused (the reason is printed), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from amiflow_schemas.events.commands import RelayAction, ValveAction
from amiflow_schemas.events.devices import FrameProtocol

from ingest.core.protocols import FrameError, MeterProfile, WallClock, decode_frame
from ingest.core.protocols import cjt188_encode as cjt188
from ingest.core.protocols import dlt645_encode as dlt645
from ingest.profiles import ProfileError, load_profile, profile_names

ACTIONS = ("valve-open", "valve-close", "relay-trip", "relay-close-allowed", "relay-close", "read", "read-address",
           "time-sync")
PROTOCOLS = {"cjt188": FrameProtocol.CJT188, "dlt645": FrameProtocol.DLT645_2007}


class UsageError(ValueError):
    """The command line asks for something that cannot be built."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        profile = load_profile(args.profile) if args.profile else None
        if args.command == "decode":
            return _decode(" ".join(args.hex), profile)
        _write(_spaced(_encode(args, profile)))
        return 0
    except (FrameError, ProfileError, UsageError, ValueError) as exc:
        reason = f" ({exc.reason.value})" if isinstance(exc, FrameError) else ""
        sys.stderr.write(f"refused{reason}: {exc}\n")
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codec_cli", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    decode = commands.add_parser("decode", help="decode one frame (hex, spaces allowed) and print it as JSON")
    decode.add_argument("hex", nargs="+", help="the frame bytes in hex; FE preamble allowed")
    decode.add_argument("--profile", help=f"meter profile: {', '.join(profile_names())}")
    encode = commands.add_parser("encode", help="print the hex of a request frame")
    encode.add_argument("action", choices=ACTIONS)
    encode.add_argument("--protocol", choices=sorted(PROTOCOLS), help="implied by --profile when given")
    encode.add_argument("--address", help="meter address as printed on the nameplate")
    encode.add_argument("--di", help="data identifier for read (default 901F / 00010000)")
    encode.add_argument("--profile", help=f"meter profile: {', '.join(profile_names())}")
    encode.add_argument("--at", help="ISO 8601 time for time-sync, or relay valid-until (default: now / now + window)")
    encode.add_argument("--tz", help="the meter's IANA time zone for --at and 'now' (default: this machine's)")
    encode.add_argument("--ser", type=int, default=0, help="CJ/T 188 sequence number (default 0)")
    return parser


def _decode(text: str, profile: MeterProfile | None) -> int:
    cleaned = "".join(c for c in text if c not in string.whitespace + ":-")
    try:
        raw = bytes.fromhex(cleaned)
    except ValueError:
        raise UsageError(f"{text!r} is not hexadecimal bytes") from None
    _write(json.dumps(decode_frame(raw, profile).to_json(), indent=2, ensure_ascii=False))
    return 0


def _encode(args: argparse.Namespace, profile: MeterProfile | None) -> bytes:
    protocol = _protocol(args.protocol, profile)
    builders = _CJT188 if protocol is FrameProtocol.CJT188 else _DLT645
    builder = builders.get(args.action)
    if builder is None:
        other = "dlt645" if protocol is FrameProtocol.CJT188 else "cjt188"
        raise UsageError(f"{args.action} is not a {args.protocol or protocol.value} request; try --protocol {other}")
    return builder(args, profile)


def _protocol(name: str | None, profile: MeterProfile | None) -> FrameProtocol:
    if profile is not None:
        if name is not None and PROTOCOLS[name] is not profile.protocol:
            raise UsageError(f"profile {profile.name} is {profile.protocol.value}, not {name}")
        if profile.protocol not in PROTOCOLS.values():
            raise UsageError(f"profile {profile.name} is {profile.protocol.value}: encode builds cjt188/dlt645 only")
        return profile.protocol
    if name is None:
        raise UsageError("give --protocol cjt188|dlt645 or a --profile")
    return PROTOCOLS[name]


def _address(args: argparse.Namespace) -> str:
    if not args.address:
        raise UsageError(f"{args.action} needs --address")
    return str(args.address)


def _zone(args: argparse.Namespace) -> ZoneInfo | None:
    try:
        return ZoneInfo(args.tz) if args.tz else None
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"unknown time zone {args.tz!r}") from None


def _wall_time(args: argparse.Namespace, default_after: timedelta = timedelta(0)) -> WallClock:
    """--at as the meter's wall time (converted to --tz when it has an offset), else now (+ a window)."""
    zone = _zone(args)
    if args.at is None:
        return WallClock.of(datetime.now(zone).astimezone(zone) + default_after)
    try:
        moment = datetime.fromisoformat(args.at)
    except ValueError:
        raise UsageError(f"--at {args.at!r} is not an ISO 8601 date-time") from None
    return WallClock.of(moment.astimezone(zone) if moment.tzinfo is not None else moment)


def _relay(action: RelayAction) -> Callable[[argparse.Namespace, MeterProfile | None], bytes]:
    def build(args: argparse.Namespace, profile: MeterProfile | None) -> bytes:
        relay = dlt645.settings_of(profile).relay
        window = timedelta(minutes=relay.valid_minutes if relay is not None else 30)
        until = _wall_time(args, default_after=window)
        return dlt645.relay_request(_address(args), action, valid_until=until, profile=profile)

    return build


def _valve(action: ValveAction) -> Callable[[argparse.Namespace, MeterProfile | None], bytes]:
    def build(args: argparse.Namespace, profile: MeterProfile | None) -> bytes:
        return cjt188.valve_request(_address(args), action, ser=args.ser, profile=profile)

    return build


_Builder = Callable[[argparse.Namespace, MeterProfile | None], bytes]
_CJT188: dict[str, _Builder] = {
    "valve-open": _valve(ValveAction.OPEN),
    "valve-close": _valve(ValveAction.CLOSE),
    "read": lambda a, p: cjt188.read_request(_address(a), a.di or "901F", ser=a.ser, profile=p),
    "read-address": lambda a, p: cjt188.read_address_request(ser=a.ser, profile=p),
    "time-sync": lambda a, p: cjt188.write_time_request(_address(a), _wall_time(a), ser=a.ser, profile=p),
}
_DLT645: dict[str, _Builder] = {
    "relay-trip": _relay(RelayAction.TRIP),
    "relay-close-allowed": _relay(RelayAction.CLOSE_ALLOWED),
    "relay-close": _relay(RelayAction.CLOSE_DIRECT),
    "read": lambda a, p: dlt645.read_request(_address(a), a.di or "00010000", profile=p),
    "time-sync": lambda a, p: dlt645.broadcast_time_request(_wall_time(a), profile=p),
}


def _spaced(frame: bytes) -> str:
    return frame.hex(" ").upper()


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
