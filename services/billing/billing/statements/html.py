"""A statement as one printable, self-contained HTML5 page: inline CSS, the daily chart as inline SVG."""

from __future__ import annotations

from html import escape

from billing.statements.chart import DailyChart
from billing.statements.content import Row, Section, StatementContent, statement_content
from billing.statements.labels import Language, quantity, unit_name, utility_name
from billing.statements.model import MonthlyStatement

# System fonts only: the page must render offline and print the same on any machine.
_STYLE = """
@page { size: A4; margin: 15mm; }
body { font-family: "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", "Helvetica Neue", Arial, sans-serif;
  color: #222; margin: 0 auto; max-width: 190mm; font-size: 10pt; }
h1 { font-size: 16pt; margin: 0; } h2 { font-size: 13pt; margin: 2pt 0 10pt; font-weight: normal; }
h3 { font-size: 11pt; margin: 14pt 0 4pt; border-bottom: 1px solid #999; }
dl { display: grid; grid-template-columns: max-content 1fr max-content 1fr; gap: 2pt 10pt; margin: 0; }
dt { color: #555; } dd { margin: 0; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 2pt 4pt; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } .num { text-align: right; white-space: nowrap; }
tr.emphasis td { font-weight: bold; } tfoot tr td { border-top: 1px solid #222; }
.legend { list-style: none; padding: 0; margin: 4pt 0; } .legend li { display: inline-block; margin-right: 14pt; }
.swatch { display: inline-block; width: 9pt; height: 9pt; margin-right: 3pt; vertical-align: middle; }
.note { color: #555; font-size: 8.5pt; } svg { width: 100%; height: auto; }
section { break-inside: avoid; }
"""


def render_html(statement: MonthlyStatement, language: Language) -> str:
    """The whole e-bill as an HTML5 document; raises StatementDoesNotReconcile first if it must."""
    content = statement_content(statement, language)
    title = escape(content.title)
    body = "\n".join((
        f"<header><h1>{escape(content.tenant_name)}</h1><h2>{title}</h2></header>",
        _details(content),
        *(_section(section) for section in content.sections),
        _chart_section(content),
    ))
    return (f'<!DOCTYPE html>\n<html lang="{language.value}">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{title} · {escape(content.account_id)}</title>\n<style>{_STYLE}</style>\n"
            f"</head>\n<body>\n{body}\n</body>\n</html>\n")


def _details(content: StatementContent) -> str:
    items = "".join(f"<dt>{escape(label)}</dt><dd>{escape(value)}</dd>" for label, value in content.details)
    return f'<section class="customer"><dl>{items}</dl></section>'


def _cells(tag: str, cells: tuple[str, ...], numeric: frozenset[int]) -> str:
    return "".join(f'<{tag} class="num">{escape(c)}</{tag}>' if i in numeric else f"<{tag}>{escape(c)}</{tag}>"
                   for i, c in enumerate(cells))


def _row(row: Row, numeric: frozenset[int]) -> str:
    css = ' class="emphasis"' if row.emphasis else ""
    return f"<tr{css}>{_cells('td', row.cells, numeric)}</tr>"


def _section(section: Section) -> str:
    if not section.rows:
        table = f"<p>{escape(section.empty_text)}</p>"
    else:
        head = f"<thead><tr>{_cells('th', section.headers, section.numeric)}</tr></thead>" if section.headers else ""
        body = "".join(_row(row, section.numeric) for row in section.rows)
        foot = "".join(_row(row, section.numeric) for row in section.footer)
        table = f"<table>{head}<tbody>{body}</tbody>{f'<tfoot>{foot}</tfoot>' if foot else ''}</table>"
    return f'<section class="{section.name}">\n<h3>{escape(section.heading)}</h3>\n{table}\n</section>'


def _chart_section(content: StatementContent) -> str:
    if not content.chart.series:
        return ""
    legend = "".join(f'<li><span class="swatch" style="background:{entry.colour}"></span>{escape(entry.text)}</li>'
                     for entry in content.legend)
    return (f'<section class="daily-chart">\n<h3>{escape(content.chart_heading)}</h3>\n'
            f"{daily_chart_svg(content.chart, content.language)}\n"
            f'<ul class="legend">{legend}</ul>\n<p class="note">{escape(content.chart_note)}</p>\n</section>')


def daily_chart_svg(chart: DailyChart, language: Language) -> str:
    """The chart as inline SVG: one <g class="day"> per day of the month, one <rect> per service."""
    units = {s.utility: unit_name(s.unit, language) for s in chart.series}
    groups = []
    for group in chart.days:
        bars = "".join(
            f'<rect class="bar {bar.utility.value}" x="{bar.x:.2f}" y="{bar.y:.2f}" width="{bar.width:.2f}" '
            f'height="{bar.height:.2f}" fill="{bar.colour}"><title>{group.day.isoformat()} '
            f"{escape(utility_name(bar.utility, language))} {escape(quantity(bar.quantity))} "
            f"{escape(units[bar.utility])}</title></rect>"
            for bar in group.bars
        )
        centre = group.x + group.width / 2
        groups.append(f'<g class="day" data-day="{group.day.isoformat()}">{bars}'
                      f'<text x="{centre:.2f}" y="{chart.height - 4:.2f}">{group.day.day}</text></g>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {chart.width:.0f} {chart.height:.0f}" '
            f'role="img"><style>text {{ font: 8px sans-serif; text-anchor: middle; fill: #555; }}</style>'
            f'<line x1="0" y1="{chart.baseline:.2f}" x2="{chart.width:.0f}" y2="{chart.baseline:.2f}" '
            f'stroke="#999" stroke-width="0.5"/>{"".join(groups)}</svg>')
