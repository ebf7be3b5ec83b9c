"""The console's SVG charts: well-formed, named for screen readers, values where they
belong, nothing unescaped, and an empty chart that says so."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from markupsafe import Markup

from newsletter.web.console import charts

SVG = "{http://www.w3.org/2000/svg}"
DAYS = ["1 Nov", "2 Nov", "3 Nov", "4 Nov"]


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def points(svg: ET.Element, name: str) -> list[tuple[float, float]]:
    line = next(p for p in svg.iter(f"{SVG}polyline") if p.get("data-series") == name)
    pairs = [pair.split(",") for pair in (line.get("points") or "").split()]
    return [(float(x), float(y)) for x, y in pairs]


def test_a_line_chart_is_a_named_image_that_scales_to_a_phone() -> None:
    svg = parse(charts.line_chart({"Joins": [1, 2, 3, 4]}, DAYS, "Growth", "readers per day"))
    assert svg.tag == f"{SVG}svg"
    assert svg.get("role") == "img"
    assert svg.get("width") == "100%" and svg.get("viewBox", "").startswith("0 0 ")
    title, desc = svg.find(f"{SVG}title"), svg.find(f"{SVG}desc")
    assert title is not None and desc is not None
    assert svg.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    assert title.text == "Growth"
    assert desc.text == "Readers per day from 1 Nov to 4 Nov. Joins: total 10, highest 4 on 4 Nov."


def test_each_series_is_a_line_placed_by_its_values() -> None:
    svg = parse(
        charts.line_chart(
            {"Joins": [0, 10, 20, 5], "Leaves": [3, 3, 3, 3]}, DAYS, "Growth", "readers"
        )
    )
    joins, leaves = points(svg, "Joins"), points(svg, "Leaves")
    assert len(joins) == len(leaves) == 4
    xs = [x for x, _ in joins]
    assert xs == sorted(xs) and xs == [x for x, _ in leaves]  # one x per day, left to right
    ys = [y for _, y in joins]
    # Larger values are higher up (smaller y), proportionally from the zero line.
    zero, ten, twenty = ys[0], ys[1], ys[2]
    assert twenty < ten < zero
    assert abs((zero - ten) - (ten - twenty)) < 0.2
    assert abs(ys[3] - (zero - (zero - ten) / 2)) < 0.2
    assert len({y for _, y in leaves}) == 1
    # The y axis reaches at least the largest value, in round steps.
    labels = [t.text for t in svg.iter(f"{SVG}text")]
    assert "0" in labels and any(label in labels for label in ("20", "25"))
    # The series differ by dash pattern as well as colour.
    dashes = {p.get("stroke-dasharray") for p in svg.iter(f"{SVG}polyline")}
    assert len(dashes) == 2
    legend = [t.text for t in svg.iter(f"{SVG}text")]
    assert "Joins" in legend and "Leaves" in legend


def test_a_bar_chart_has_one_bar_per_item_as_long_as_its_value() -> None:
    svg = parse(charts.bar_chart([("gmail.com", 30), ("outlook.com", 15), ("web.de", 0)], "Blocks"))
    bars = list(svg.iter(f"{SVG}rect"))
    assert [b.get("data-name") for b in bars] == ["gmail.com", "outlook.com", "web.de"]
    widths = [float(b.get("width") or 0) for b in bars]
    assert widths[0] > 0 and abs(widths[1] - widths[0] / 2) < 0.2 and widths[2] == 0
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert texts == ["gmail.com", "30", "outlook.com", "15", "web.de", "0"]
    desc = svg.find(f"{SVG}desc")
    assert desc is not None and desc.text == "Blocks: gmail.com 30, outlook.com 15, web.de 0."


def test_names_are_escaped_and_long_ones_shortened_on_the_chart_only() -> None:
    name = "<script>alert(1)</script>&a-very-long-receiving-domain.example"
    markup = charts.bar_chart([(name, 1_234_567)], 'Blocks "by" domain')
    assert "<script>" not in markup
    svg = parse(markup)
    (bar,) = svg.iter(f"{SVG}rect")
    assert bar.get("data-name") == name
    texts = [t.text or "" for t in svg.iter(f"{SVG}text")]
    assert texts[0].endswith("…") and len(texts[0]) == 17
    assert texts[1] == "1,234,567"
    table = charts.bar_table([(name, 1_234_567)], "Blocks", ("Domain", "Blocks"))
    assert "<script>" not in table
    cells = [c.text for c in ET.fromstring(str(table)).iter() if c.tag in ("th", "td")]
    assert cells == ["Domain", "Blocks", name, "1,234,567"]


def test_empty_charts_say_there_is_no_data() -> None:
    for markup in (
        charts.line_chart({}, DAYS, "Growth", "readers"),
        charts.line_chart({"Joins": []}, [], "Growth", "readers"),
        charts.bar_chart([], "Blocks"),
    ):
        svg = parse(markup)
        assert svg.get("role") == "img"
        assert [t.text for t in svg.iter(f"{SVG}text")] == ["No data yet"]
    # All zeros is data: a flat line on a 0–1 axis.
    flat = parse(charts.line_chart({"Joins": [0, 0, 0, 0]}, DAYS, "Growth", "readers"))
    assert len({y for _, y in points(flat, "Joins")}) == 1


def test_one_day_is_a_dot_and_fractions_are_kept() -> None:
    svg = parse(charts.line_chart({"Rate": [2.5]}, ["10:00"], "Rate", "messages/s"))
    (dot,) = svg.iter(f"{SVG}circle")
    assert dot.get("data-series") == "Rate"
    rates = parse(charts.line_chart({"Rate": [0.2, 0.35, 0.1]}, DAYS[:3], "Rate", "messages/s"))
    labels = [t.text for t in rates.iter(f"{SVG}text")]
    assert "0.4" in labels or "0.5" in labels  # the axis is not rounded up to whole numbers


def test_the_table_equivalent_has_a_row_per_label_and_a_column_per_series() -> None:
    table = ET.fromstring(
        str(charts.line_table({"Joins": [1, 2], "Leaves": [0, 1000]}, ["1 Nov", "2 Nov"], "G"))
    )
    caption = table.find("caption")
    assert caption is not None and caption.text == "G"
    rows = [[c.text for c in tr] for tr in table.iter("tr")]
    assert rows == [["Day", "Joins", "Leaves"], ["1 Nov", "1", "0"], ["2 Nov", "2", "1,000"]]
    figure = ET.fromstring(str(charts.figure(charts.bar_chart([("a", 1)], "B"), table_markup())))
    assert figure.tag == "figure" and figure.find("details/summary") is not None


def table_markup() -> Markup:
    return charts.bar_table([("a", 1)], "B")


def test_two_charts_on_one_page_have_their_own_ids() -> None:
    a = parse(charts.line_chart({"Joins": [1, 2]}, DAYS[:2], "Growth of A", "readers"))
    b = parse(charts.line_chart({"Joins": [1, 2]}, DAYS[:2], "Growth of B", "readers"))
    assert a.get("id") != b.get("id")
    c = parse(charts.line_chart({"Joins": [1]}, DAYS[:1], "Growth", "r", chart_id="mine"))
    assert c.get("id") == "mine" and c.get("aria-labelledby") == "mine-title mine-desc"
