"""A statement as an A4 PDF with the same content as the HTML page (reportlab, no font files needed)."""

from __future__ import annotations

from functools import cache
from io import BytesIO
from xml.sax.saxutils import escape

from reportlab.graphics.shapes import Drawing, Line, Rect, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from reportlab.platypus.doctemplate import BaseDocTemplate

from billing.statements.chart import DailyChart
from billing.statements.content import Row, Section, StatementContent, statement_content
from billing.statements.labels import Language, page_number
from billing.statements.model import MonthlyStatement

# One of Adobe's CID fonts that every PDF reader carries: Chinese needs no embedded font file.
# It has no bold face, so emphasis in Chinese is by size and rules only.
_CHINESE = "STSong-Light"
_MARGIN = 15 * mm
_GREY = colors.HexColor("#f0f0f0")


@cache
def _register_chinese_font() -> None:
    pdfmetrics.registerFont(UnicodeCIDFont(_CHINESE))


class _Styles:
    """Paragraph styles for one language."""

    def __init__(self, language: Language) -> None:
        if language is Language.ZH_CN:
            _register_chinese_font()
            regular, bold = _CHINESE, _CHINESE
        else:
            regular, bold = "Helvetica", "Helvetica-Bold"
        self.regular = regular
        self.text = ParagraphStyle("text", fontName=regular, fontSize=9, leading=11.5, wordWrap="CJK")
        self.strong = ParagraphStyle("strong", parent=self.text, fontName=bold)
        self.number = ParagraphStyle("number", parent=self.text, alignment=TA_RIGHT)
        self.strong_number = ParagraphStyle("strong_number", parent=self.strong, alignment=TA_RIGHT)
        self.note = ParagraphStyle("note", parent=self.text, fontSize=7.5, textColor=colors.HexColor("#555555"))
        self.tenant = ParagraphStyle("tenant", parent=self.strong, fontSize=16, leading=20)
        self.title = ParagraphStyle("title", parent=self.text, fontSize=13, leading=17, spaceAfter=6)
        self.heading = ParagraphStyle("heading", parent=self.strong, fontSize=11, leading=14, spaceBefore=10,
                                      spaceAfter=4)

    def cell(self, text: str, numeric: bool, emphasis: bool) -> Paragraph:
        style = {(False, False): self.text, (False, True): self.strong,
                 (True, False): self.number, (True, True): self.strong_number}[numeric, emphasis]
        return _paragraph(text, style)


def _font_for(text: str, font: str) -> str:
    # Helvetica covers WinAnsi (cp1252) only: a Chinese name or address on an English bill is set
    # in the CID font instead of printing as empty boxes.
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        _register_chinese_font()
        return _CHINESE
    return font


def _paragraph(text: str, style: ParagraphStyle) -> Paragraph:
    # Paragraph parses its text as markup: every string is escaped, or a customer name with
    # "<" or "&" would break the bill or inject markup into it.
    font = _font_for(text, style.fontName)
    markup = escape(text) if font == style.fontName else f'<font name="{font}">{escape(text)}</font>'
    return Paragraph(markup, style)


def render_pdf(statement: MonthlyStatement, language: Language) -> bytes:
    """The whole e-bill as PDF bytes; raises StatementDoesNotReconcile first if it must."""
    content = statement_content(statement, language)
    styles = _Styles(language)
    buffer = BytesIO()
    document = SimpleDocTemplate(
        buffer, pagesize=A4, leftMargin=_MARGIN, rightMargin=_MARGIN, topMargin=_MARGIN, bottomMargin=_MARGIN,
        title=f"{content.title} {content.account_id}", author=content.tenant_name, subject=content.title,
        creator="amiflow billing",
        lang=language.value, invariant=True,  # the same statement gives the same bytes: no timestamps
    )

    def footer(canvas: Canvas, template: BaseDocTemplate) -> None:
        canvas.saveState()
        reference = f"{content.account_id} · {content.title}"
        canvas.setFont(_font_for(reference, styles.regular), 7.5)
        canvas.drawString(_MARGIN, 8 * mm, reference)
        canvas.setFont(styles.regular, 7.5)
        canvas.drawRightString(A4[0] - _MARGIN, 8 * mm, page_number(canvas.getPageNumber(), language))
        canvas.restoreState()

    document.build(_story(content, styles, document.width), onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


def _story(content: StatementContent, styles: _Styles, width: float) -> list[Flowable]:
    story: list[Flowable] = [
        _paragraph(content.tenant_name, styles.tenant),
        _paragraph(content.title, styles.title),
        _details(content, styles, width),
    ]
    for section in content.sections:
        story.append(KeepTogether([_paragraph(section.heading, styles.heading),
                                   _section_table(section, styles, width)]))
    if content.chart.series:
        # ZapfDingbats "n" is a filled square, and a standard PDF font like Helvetica.
        legend = "    ".join(f'<font name="ZapfDingbats" color="{e.colour}">n</font> {escape(e.text)}'
                           for e in content.legend)
        story.append(KeepTogether([
            _paragraph(content.chart_heading, styles.heading),
            _chart_drawing(content.chart, styles.regular, width),
            Spacer(0, 3),
            Paragraph(legend, styles.text),
            _paragraph(content.chart_note, styles.note),
        ]))
    return story


def _details(content: StatementContent, styles: _Styles, width: float) -> Table:
    pairs = [(styles.cell(label, False, False), styles.cell(value, False, False)) for label, value in content.details]
    rows = [[*pairs[i], *(pairs[i + 1] if i + 1 < len(pairs) else ("", ""))] for i in range(0, len(pairs), 2)]
    table = Table(rows, colWidths=[width * 0.16, width * 0.34] * 2)
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return table


def _section_table(section: Section, styles: _Styles, width: float) -> Flowable:
    if not section.rows:
        return _paragraph(section.empty_text, styles.text)

    def line(row: Row) -> list[Paragraph]:
        return [styles.cell(text, i in section.numeric, row.emphasis) for i, text in enumerate(row.cells)]

    header = [[styles.cell(h, i in section.numeric, True) for i, h in enumerate(section.headers)]]
    header = header if section.headers else []
    rows = header + [line(row) for row in section.rows] + [line(row) for row in section.footer]
    style = TableStyle()
    style.add("VALIGN", (0, 0), (-1, -1), "TOP")
    style.add("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#dddddd"))
    if header:
        style.add("BACKGROUND", (0, 0), (-1, 0), _GREY)
    if section.footer:
        style.add("LINEABOVE", (0, -len(section.footer)), (-1, -len(section.footer)), 0.75, colors.black)
    table = Table(rows, colWidths=_column_widths(section, width), repeatRows=len(header))
    table.setStyle(style)
    return table


def _column_widths(section: Section, width: float) -> list[float]:
    # Amount columns get room for "-12,345.67 CNY"; text columns share the rest.
    columns = len(section.rows[0].cells)
    numeric = len(section.numeric)
    numeric_width = min(width * 0.2, width / columns)
    text_width = (width - numeric * numeric_width) / max(columns - numeric, 1)
    return [numeric_width if i in section.numeric else text_width for i in range(columns)]


def _chart_drawing(chart: DailyChart, font: str, width: float) -> Drawing:
    """The shared layout drawn in PDF space: scaled to the frame and flipped (PDF y grows upward)."""
    scale = width / chart.width
    drawing = Drawing(width, chart.height * scale)

    def up(y: float) -> float:
        return (chart.height - y) * scale

    drawing.add(Line(0, up(chart.baseline), width, up(chart.baseline), strokeColor=colors.grey, strokeWidth=0.5))
    for group in chart.days:
        for bar in group.bars:
            rect = Rect(bar.x * scale, up(bar.y + bar.height), bar.width * scale, bar.height * scale)
            # Set after construction: types-reportlab 5.0 types Rect's **kw without Unpack.
            rect.fillColor, rect.strokeColor = colors.HexColor(bar.colour), None
            drawing.add(rect)
        drawing.add(String((group.x + group.width / 2) * scale, up(chart.height - 4), str(group.day.day),
                           fontName=font, fontSize=6, textAnchor="middle", fillColor=colors.HexColor("#555555")))
    return drawing
