"""Charts drawn on the server as SVG, each with a table saying the same for screen readers.

Pure functions from numbers to markup: no JavaScript, nothing from a CDN, and the same
bytes in every browser. Each SVG carries `role="img"`, a <title> and a <desc> (named by
`aria-labelledby`), a viewBox and `width="100%"` so it shrinks to a 390 px phone, and its
own small <style> (scoped by the `nl-chart` class) so any page can show it without a
stylesheet of its own; colours come from the console's CSS variables with fallbacks and
keep 3:1 against the card in light and dark. Series differ by dash pattern as well as
colour, for people who do not tell the colours apart.

    line_chart(series, labels, title, y_label)   several daily series as lines
    bar_chart(items, title)                      one value per name, horizontal bars
    line_table / bar_table                       the same numbers as a <table>
    figure(chart, table)                         chart + the table in a <details>
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

WIDTH = 480
# In viewBox units: about 10 px on a 390 px phone, 17 px at the widest (MAX_WIDTH).
FONT = 15
LEGEND_X = 8
DASHES = ("", "8 4", "2 4", "12 4 3 4", "4 2")

_STYLE = Markup(
    "<style>"
    ".nl-chart{--c1:#1a4f8b;--c2:#1e6b32;--c3:#a4161a;--c4:#8a5a00;--c5:#6a3d9a;"
    "font-family:system-ui,sans-serif;max-width:36rem;height:auto}"
    "@media (prefers-color-scheme:dark){.nl-chart{--c1:#8ab8ee;--c2:#7fd49a;--c3:#ff8f8f;"
    "--c4:#f0c060;--c5:#c9a0f0}}"
    ".nl-chart text{fill:currentColor}"
    ".nl-chart .grid{stroke:var(--line,#d0d0cc)}"
    ".nl-chart .axis{stroke:currentColor}"
    ".nl-chart .s1{--c:var(--c1)}.nl-chart .s2{--c:var(--c2)}.nl-chart .s3{--c:var(--c3)}"
    ".nl-chart .s4{--c:var(--c4)}.nl-chart .s5{--c:var(--c5)}"
    ".nl-chart polyline,.nl-chart line.key{stroke:var(--c);fill:none}"
    ".nl-chart rect,.nl-chart circle{fill:var(--c)}"
    "</style>"
)
# The same colours as attributes: what a reader of the bare SVG file sees.
_FALLBACK = ("#1a4f8b", "#1e6b32", "#a4161a", "#8a5a00", "#6a3d9a")


def line_chart(
    series: Mapping[str, Sequence[float]],
    labels: Sequence[str],
    title: str,
    y_label: str,
    *,
    desc: str | None = None,
    chart_id: str | None = None,
) -> Markup:
    """Lines over a shared x axis: `series` maps a name to one value per label (a day,
    a minute), drawn in order; `y_label` names the unit ("subscribers", "messages/s")."""
    ident = chart_id or _ident(title, series, labels)
    names = list(series)
    count = len(labels)
    if not names or count == 0:
        return _empty(ident, title, desc or f"{title}: no data yet.")
    legend_rows = _legend_rows(names)
    top = 12 + legend_rows * (FONT + 10)
    values = [float(v) for name in names for v in series[name][:count]]
    low = min(0.0, *values) if values else 0.0
    whole = all(v.is_integer() for v in values)
    ticks = _ticks(low, max(values, default=0.0), whole=whole)
    # Room for the widest number on the y axis, and for half of the last day's label.
    left = max(36.0, max(len(_fmt(t)) for t in ticks) * FONT * 0.6 + 10)
    right, bottom, plot_h = 12, 44, 150
    height = top + plot_h + bottom
    plot_w = WIDTH - left - right
    span = ticks[-1] - ticks[0] or 1.0

    def x(i: int) -> float:
        return left + (plot_w * i / (count - 1) if count > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h - (v - ticks[0]) / span * plot_h

    parts = [_open(ident, title, desc or _line_desc(series, labels, y_label), height)]
    parts.extend(_legend(names))
    for tick in ticks:
        ty = _n(y(tick))
        parts.append(
            f'<line class="grid" x1="{_n(left)}" x2="{WIDTH - right}" y1="{ty}" y2="{ty}"'
            f' stroke="#d0d0cc" stroke-width="1"/>'
            f'<text x="{_n(left - 6)}" y="{_n(y(tick) + FONT / 3)}" text-anchor="end"'
            f' font-size="{FONT}">{escape(_fmt(tick))}</text>'
        )
    base = _n(top + plot_h)
    parts.append(
        f'<line class="axis" x1="{_n(left)}" x2="{WIDTH - right}" y1="{base}" y2="{base}"'
        ' stroke="#555" stroke-width="1"/>'
    )
    for i in _label_positions(count):
        anchor = "start" if i == 0 and count > 1 else "end" if i == count - 1 else "middle"
        parts.append(
            f'<text x="{_n(x(i))}" y="{_n(top + plot_h + FONT + 8)}" text-anchor="{anchor}"'
            f' font-size="{FONT}">{escape(labels[i])}</text>'
        )
    parts.append(
        f'<text x="{LEGEND_X}" y="{height - 6}" font-size="{FONT}">{escape(y_label)}</text>'
    )
    for index, name in enumerate(names):
        cls = f"s{index % len(DASHES) + 1}"
        colour = _FALLBACK[index % len(_FALLBACK)]
        dash = DASHES[index % len(DASHES)]
        points = [(x(i), y(float(v))) for i, v in enumerate(series[name][:count])]
        if len(points) == 1:
            px, py = points[0]
            parts.append(
                f'<circle class="{cls}" cx="{_n(px)}" cy="{_n(py)}" r="4" fill="{colour}"'
                f' data-series="{escape(name)}"/>'
            )
            continue
        coords = " ".join(f"{_n(px)},{_n(py)}" for px, py in points)
        parts.append(
            f'<polyline class="{cls}" points="{coords}" fill="none" stroke="{colour}"'
            f' stroke-width="2.5" stroke-linejoin="round"'
            + (f' stroke-dasharray="{dash}"' if dash else "")
            + f' data-series="{escape(name)}"/>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(
    items: Sequence[tuple[str, float]],
    title: str,
    *,
    value_label: str = "",
    desc: str | None = None,
    chart_id: str | None = None,
) -> Markup:
    """One horizontal bar per (name, value), in the order given, the value written at
    the bar's end; long names are shortened on the chart (the table has them whole)."""
    ident = chart_id or _ident(title, items, value_label)
    if not items:
        return _empty(ident, title, desc or f"{title}: none.")
    row, gap, top = 26, 8, 8
    left = 150
    value_w = max(40.0, max(len(_fmt(v)) for _, v in items) * FONT * 0.6 + 12)
    bar_w = WIDTH - left - value_w
    height = top * 2 + len(items) * (row + gap)
    largest = max((float(v) for _, v in items), default=0.0) or 1.0
    summary = desc or _bar_desc(items, title, value_label)
    parts = [_open(ident, title, summary, height)]
    for index, (name, value) in enumerate(items):
        y0 = top + index * (row + gap)
        width = max(0.0, float(value)) / largest * bar_w
        text_y = _n(y0 + row / 2 + FONT / 3)
        parts.append(
            f'<text x="{left - 8}" y="{text_y}" text-anchor="end" font-size="{FONT}">'
            f"{escape(_shorten(name, 17))}</text>"
            f'<rect class="s1" x="{left}" y="{y0}" width="{_n(width)}" height="{row}"'
            f' fill="{_FALLBACK[0]}" data-name="{escape(name)}"'
            f' data-value="{escape(_fmt(value))}"/>'
            f'<text x="{_n(left + width + 6)}" y="{text_y}" font-size="{FONT}">'
            f"{escape(_fmt(value))}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def line_table(
    series: Mapping[str, Sequence[float]],
    labels: Sequence[str],
    caption: str,
    label_header: str = "Day",
) -> Markup:
    """The line chart's numbers: one row per label, one column per series."""
    names = list(series)
    head = "".join(f'<th scope="col" class="num">{escape(n)}</th>' for n in names)
    rows = []
    for i, label in enumerate(labels):
        cells = "".join(f'<td class="num">{escape(_fmt(_at(series[n], i)))}</td>' for n in names)
        rows.append(f'<tr><th scope="row">{escape(label)}</th>{cells}</tr>')
    return _table(caption, f'<th scope="col">{escape(label_header)}</th>{head}', rows)


def bar_table(
    items: Sequence[tuple[str, float]],
    caption: str,
    headers: tuple[str, str] = ("Name", "Count"),
) -> Markup:
    rows = [
        f'<tr><th scope="row">{escape(name)}</th><td class="num">{escape(_fmt(value))}</td></tr>'
        for name, value in items
    ]
    head = (
        f'<th scope="col">{escape(headers[0])}</th>'
        f'<th scope="col" class="num">{escape(headers[1])}</th>'
    )
    return _table(caption, head, rows)


def figure(chart: Markup, table: Markup, summary: str = "The numbers as a table") -> Markup:
    """A chart with its table in a <details> beneath it (closed: people who read the
    chart see the chart; a screen reader's user opens the table)."""
    return Markup(
        '<figure class="chart-figure">{}<details><summary>{}</summary>'
        '<div class="table-wrap">{}</div></details></figure>'
    ).format(chart, summary, table)


# -- pieces ------------------------------------------------------------------------------


def _open(ident: str, title: str, desc: str, height: float) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart nl-chart" role="img"'
        f' viewBox="0 0 {WIDTH} {_n(height)}" width="100%" preserveAspectRatio="xMidYMid meet"'
        f' aria-labelledby="{ident}-title {ident}-desc" id="{ident}">'
        f'<title id="{ident}-title">{escape(title)}</title>'
        f'<desc id="{ident}-desc">{escape(desc)}</desc>{_STYLE}'
    )


def _empty(ident: str, title: str, desc: str) -> Markup:
    return Markup(
        _open(ident, title, desc, 60)
        + f'<text x="{WIDTH / 2:g}" y="36" text-anchor="middle" font-size="{FONT}">'
        "No data yet</text></svg>"
    )


def _legend_rows(names: Sequence[str]) -> int:
    rows, used = 1, 0.0
    for name in names:
        need = _key_width(name)
        if used and used + need > WIDTH - LEGEND_X:
            rows, used = rows + 1, 0.0
        used += need
    return rows


def _key_width(name: str) -> float:
    return 34 + len(name) * FONT * 0.6 + 18


def _legend(names: Sequence[str]) -> list[str]:
    parts, row, used = [], 0, 0.0
    for index, name in enumerate(names):
        need = _key_width(name)
        if used and used + need > WIDTH - LEGEND_X:
            row, used = row + 1, 0.0
        x0, y0 = LEGEND_X + used, 12 + row * (FONT + 10) + FONT / 2
        cls = f"s{index % len(DASHES) + 1}"
        dash = DASHES[index % len(DASHES)]
        parts.append(
            f'<line class="key {cls}" x1="{_n(x0)}" x2="{_n(x0 + 28)}" y1="{_n(y0)}"'
            f' y2="{_n(y0)}" stroke="{_FALLBACK[index % len(_FALLBACK)]}" stroke-width="3"'
            + (f' stroke-dasharray="{dash}"' if dash else "")
            + f'/><text x="{_n(x0 + 34)}" y="{_n(y0 + FONT / 3)}" font-size="{FONT}">'
            f"{escape(name)}</text>"
        )
        used += need
    return parts


def _label_positions(count: int, most: int = 5) -> list[int]:
    """First, last and evenly spaced ones between: labels that do not overlap."""
    if count <= most:
        return list(range(count))
    step = (count - 1) / (most - 1)
    return sorted({round(i * step) for i in range(most)})


def _ticks(low: float, high: float, most: int = 4, whole: bool = False) -> list[float]:
    """Round steps from `low` (0 or below) to at least `high`: 0, 5, 10, 15, 20; whole
    steps for counts."""
    if high <= low:
        high = low + 1
    raw = (high - low) / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    if whole and step < 1:
        step = 1.0
    start = math.floor(low / step) * step
    ticks = [start]
    while ticks[-1] < high - 1e-9:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _fmt(value: float) -> str:
    number = float(value)
    if number.is_integer():
        return f"{int(number):,}"
    return f"{number:,.4f}".rstrip("0").rstrip(".")


def _n(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _at(values: Sequence[float], index: int) -> float:
    return values[index] if index < len(values) else 0.0


def _shorten(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _ident(title: str, *data: object) -> str:
    digest = hashlib.blake2b(repr((title, data)).encode(), digest_size=5).hexdigest()
    return f"chart-{digest}"


def _line_desc(series: Mapping[str, Sequence[float]], labels: Sequence[str], unit: str) -> str:
    span = f"from {labels[0]} to {labels[-1]}" if len(labels) > 1 else f"on {labels[0]}"
    said = []
    for name, values in series.items():
        shown = [float(v) for v in values[: len(labels)]]
        if not shown:
            continue
        peak = max(range(len(shown)), key=lambda i: shown[i])
        said.append(
            f"{name}: total {_fmt(sum(shown))}, highest {_fmt(shown[peak])} on {labels[peak]}"
        )
    return f"{unit.capitalize()} {span}. " + "; ".join(said) + "."


def _bar_desc(items: Sequence[tuple[str, float]], title: str, unit: str) -> str:
    said = ", ".join(f"{name} {_fmt(value)}" for name, value in items[:10])
    more = f", and {len(items) - 10} more" if len(items) > 10 else ""
    return f"{title}{f' ({unit})' if unit else ''}: {said}{more}."


def _table(caption: str, head: str, rows: list[str]) -> Markup:
    return Markup(
        f"<table><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
