"""Printable device labels for field crews: a QR code of the device's URI with its id and a short text.

The URI, ``amiflow://<tenant>/<kind>/<id>``, is the device's registry key and never changes while
the device exists, so a label printed once stays valid through firmware, SIM and address changes.
SVG for printers and documents; PNG drawn pixel by pixel (segno for the code, a built-in font for
the caption), so no imaging library is needed.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from urllib.parse import quote
from xml.sax.saxutils import escape

import segno
from amiflow_schemas.events.registry import DeviceKind

from ingest.adapters.label_font import GLYPH_HEIGHT, glyph
from ingest.core.registry import Gateway, Meter

QR_BORDER = 4  # modules of quiet zone, as ISO/IEC 18004 asks
MAX_CAPTION_CHARS = 40


@dataclass(frozen=True)
class DeviceLabel:
    uri: str
    caption: tuple[str, ...]  # the id first, then a short text


def device_uri(tenant_id: str, kind: DeviceKind, device_id: str) -> str:
    return "amiflow://" + "/".join(quote(part, safe="") for part in (tenant_id, kind.value, device_id))


def meter_label(meter: Meter) -> DeviceLabel:
    d = meter.details
    return DeviceLabel(device_uri(meter.tenant_id, DeviceKind.METER, meter.meter_id),
                       (meter.meter_id, f"{d.profile} · {d.bus_address}"))


def gateway_label(gateway: Gateway) -> DeviceLabel:
    d = gateway.details
    text = " · ".join(part for part in (d.kind.value, d.model, d.registration_id) if part)
    return DeviceLabel(device_uri(gateway.tenant_id, DeviceKind.GATEWAY, gateway.gateway_id),
                       (gateway.gateway_id, text))


def _caption(label: DeviceLabel) -> list[str]:
    return [line if len(line) <= MAX_CAPTION_CHARS else line[: MAX_CAPTION_CHARS - 1] + "…"
            for line in label.caption]


def _modules(uri: str) -> list[list[bool]]:
    qr = segno.make(uri, error="m", micro=False)  # M: a scratched label still scans
    return [[bool(dark) for dark in row] for row in qr.matrix_iter(scale=1, border=QR_BORDER)]


def label_svg(label: DeviceLabel, module_px: int = 6) -> str:
    """The label as an SVG document: the code, then the caption lines centred below it."""
    modules = _modules(label.uri)
    qr_px = len(modules) * module_px
    lines = _caption(label)
    font_px, line_px = 16, 22
    width = max(qr_px, max(len(line) for line in lines) * font_px * 6 // 10 + 2 * module_px * QR_BORDER)
    height = qr_px + len(lines) * line_px + module_px * QR_BORDER
    left = (width - qr_px) // 2
    path = "".join(f"M{left + x * module_px} {y * module_px}h{run * module_px}v{module_px}h-{run * module_px}z"
                   for y, x, run in _runs(modules))
    texts = "".join(
        f'<text x="{width // 2}" y="{qr_px + (i + 1) * line_px - 4}" text-anchor="middle" '
        f'font-size="{font_px}" font-weight="{"bold" if i == 0 else "normal"}">{escape(line)}</text>'
        for i, line in enumerate(lines))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}"><title>{escape(label.uri)}</title>'
            f'<rect width="100%" height="100%" fill="#fff"/><path fill="#000" d="{path}"/>'
            f'<g font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" fill="#000">{texts}</g></svg>\n')


def _runs(modules: list[list[bool]]) -> list[tuple[int, int, int]]:
    """(row, first column, length) of each horizontal run of dark modules."""
    runs = []
    for y, row in enumerate(modules):
        x = 0
        while x < len(row):
            if row[x]:
                start = x
                while x < len(row) and row[x]:
                    x += 1
                runs.append((y, start, x - start))
            else:
                x += 1
    return runs


def label_png(label: DeviceLabel, module_px: int = 8, text_px: int = 2) -> bytes:
    """The label as a greyscale PNG: the code, then the caption in the built-in pixel font."""
    pixels = [[dark for dark in row for _ in range(module_px)] for row in _modules(label.uri)
              for _ in range(module_px)]
    for i, line in enumerate(_caption(label)):
        pixels += _text_rows(line, text_px + 1 if i == 0 else text_px)  # the id a size larger
        pixels += [[False]] * (text_px * 4)
    pixels += [[False]] * (module_px * 2)
    width = max(len(row) for row in pixels) + 2 * module_px * QR_BORDER  # text keeps the quiet zone too
    centred = [_centre(row, width) for row in pixels]
    return _png(centred)


def _text_rows(line: str, scale: int) -> list[list[bool]]:
    rows: list[list[bool]] = []
    for r in range(GLYPH_HEIGHT):
        row = [cell == "#" for char in line for cell in glyph(char)[r] + "."]
        rows += [[pixel for pixel in row for _ in range(scale)]] * scale
    return rows


def _centre(row: list[bool], width: int) -> list[bool]:
    left = (width - len(row)) // 2
    return [False] * left + row + [False] * (width - len(row) - left)


def _png(rows: list[list[bool]]) -> bytes:
    height, width = len(rows), len(rows[0])
    raw = b"".join(b"\x00" + bytes(0 if dark else 255 for dark in row) for row in rows)  # filter 0 per row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
