import base64

import pytest

from robustrl.report.html import (
    Card,
    Section,
    cards_html,
    external_references,
    figure_html,
    json_details,
    page_html,
    table_html,
)


def test_external_references_finds_every_way_out():
    page = (
        '<img src="https://x.org/a.png"><a href="http://y.org">y</a><script>1</script>'
        '<link rel="stylesheet" href="s.css"><div style="background:url(//cdn/x.png)"></div>'
        "<style>@import 'a.css';</style><iframe></iframe>"
    )
    found = external_references(page)
    for bad in (
        "https://x.org/a.png",
        "http://y.org",
        "<script",
        "<link",
        "s.css",
        "//cdn/x.png",
        "@import",
        "<iframe",
    ):
        assert any(bad in f for f in found), bad


def test_external_references_accepts_data_uris_and_anchors():
    page = '<a href="#attacks">a</a><img src="data:image/png;base64,AAAA"><p>see https://example.org in text</p>'
    assert external_references(page) == []


def test_figure_is_embedded_as_data_uri():
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"></svg>'
    html = figure_html(svg, None, alt='a "quoted" figure', caption="x < y", fig_id="fig-a")
    uri = html.split('src="')[1].split('"')[0]
    assert uri.startswith("data:image/svg+xml;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == svg
    assert 'alt="a &quot;quoted&quot; figure"' in html and "<figcaption>x &lt; y</figcaption>" in html
    assert external_references(html) == []  # the SVG's namespace URL is inside the base64 payload
    png = figure_html(None, b"\x89PNG", alt="p")
    assert 'src="data:image/png;base64,' in png
    with pytest.raises(ValueError):
        figure_html(None, None, alt="none")


def test_table_escapes_and_checks_shapes():
    html = table_html(["a", "b"], [["<x>", 1.5]], numeric=[False, True], cell_classes=[["", "bad"]], table_id="t")
    assert "<td>&lt;x&gt;</td>" in html and '<td class="num bad">1.5</td>' in html and 'id="t"' in html
    with pytest.raises(ValueError, match="row 0 has 1 cells for 2 columns"):
        table_html(["a", "b"], [["x"]])


def test_page_is_self_contained_and_escaped():
    sec = Section("summary", "At <a> glance", cards_html([Card("Clean", "500", "CI [490, 500]", "good")]), "lead")
    details = json_details("config", {"url": "https://not-a-link.example", "seed": 3})
    page = page_html("Report <1>", "sub", [sec, Section("provenance", "Prov", details)], footer="f")
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Report &lt;1&gt;</title>" in page
    assert '<a href="#summary">At &lt;a&gt; glance</a>' in page
    assert '<div class="card good">' in page and "&quot;seed&quot;: 3" in page
    assert external_references(page) == []
    with pytest.raises(ValueError, match="section id"):
        page_html("t", "s", [Section("bad id", "h", "")])
