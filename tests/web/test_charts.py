from __future__ import annotations

import re

from vouch.web.console.charts import Series, bar_chart, line_chart


def test_line_chart_carries_every_value_and_escapes_labels():
    svg = str(
        line_chart("Pipeline", ["2026-09", "<b>", "2026-11"], [Series("won", [100, 250.5, 0])])
    )
    assert svg.startswith('<svg class="chart" viewBox="0 0 640 240"')
    values = re.findall(r'data-value="([^"]+)"', svg)
    assert values == ["100", "250.5", "0"]
    assert "<b>" not in svg
    assert "&lt;b&gt;" in svg


def test_bar_chart_orders_items_and_prints_values():
    svg = str(bar_chart("Funnel", [("clicks", 900), ("leads", 80), ("won", 16)]))
    assert re.findall(r'data-label="([^"]+)" data-value="([^"]+)"', svg) == [
        ("clicks", "900"),
        ("leads", "80"),
        ("won", "16"),
    ]
    assert ">900<" in svg


def test_empty_charts_render():
    assert "<svg" in str(line_chart("x", [], []))
    assert "<svg" in str(bar_chart("x", []))
