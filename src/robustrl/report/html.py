"""Self-contained HTML assembly: inline CSS, figures as ``data:`` URIs, no scripts, no external URLs.

Everything here is a pure function from values to HTML text; every value is escaped. The page opens
from a file, an e-mail attachment or an air-gapped machine and looks the same.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Sequence
from html.parser import HTMLParser
from typing import Any, Literal, NamedTuple

__all__ = [
    "Card",
    "Section",
    "Tone",
    "cards_html",
    "external_references",
    "figure_html",
    "json_details",
    "page_html",
    "table_html",
]

Tone = Literal["good", "warn", "bad", "neutral", "cert"]

_CSS = """
:root { --fg:#1d2330; --muted:#5b6475; --line:#e3e6ec; --bg:#f6f7f9; --card:#ffffff;
  --good:#1a9641; --warn:#d08a00; --bad:#c62828; --cert:#1a9641; --clean:#2c7bb6; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; }
header.top { background:#1d2330; color:#fff; padding:28px 40px 22px; }
header.top h1 { margin:0 0 4px; font-size:26px; font-weight:650; letter-spacing:.2px; }
header.top p { margin:0; color:#c5cbd6; font-size:13.5px; }
nav.toc { background:#272e3d; padding:8px 40px; font-size:13px; }
nav.toc a { color:#dfe4ee; text-decoration:none; margin-right:18px; }
main { max-width:1180px; margin:0 auto; padding:26px 40px 60px; }
section { background:var(--card); border:1px solid var(--line); border-radius:10px;
  padding:20px 24px 16px; margin:0 0 22px; }
section > h2 { margin:0 0 4px; font-size:19px; }
section > p.lead, p.note { color:var(--muted); margin:0 0 14px; font-size:13.5px; }
h3 { font-size:15.5px; margin:18px 0 8px; }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(190px, 1fr)); gap:10px; margin:0; }
.group { margin:6px 0 18px; }
.row { display:grid; grid-template-columns:190px 1fr; gap:14px; align-items:start; margin:0 0 10px; }
.rowlabel { font-size:13px; font-weight:600; color:var(--muted); padding-top:10px; }
ul.verdict { margin:2px 0 12px; padding-left:20px; font-size:14px; }
ul.verdict li { margin:2px 0; }
.card { border:1px solid var(--line); border-left:6px solid #9aa3b2; border-radius:8px; padding:10px 14px;
  background:#fbfcfd; }
.card .label { font-size:12.5px; color:var(--muted); font-weight:600; letter-spacing:.2px; }
.card .value { font-size:25px; font-weight:650; line-height:1.25; margin:2px 0; }
.card .detail { font-size:12.5px; color:var(--muted); }
.card.good { border-left-color:var(--good); } .card.good .value { color:var(--good); }
.card.warn { border-left-color:var(--warn); } .card.warn .value { color:#a86f00; }
.card.bad { border-left-color:var(--bad); } .card.bad .value { color:var(--bad); }
.card.cert { border-left-color:var(--cert); background:#f3faf4; }
.card.neutral { border-left-color:var(--clean); }
figure { margin:10px 0 18px; }
figure img { display:block; width:100%; max-width:880px; height:auto; margin:0 auto; }
figcaption { color:var(--muted); font-size:13px; max-width:880px; margin:6px auto 0; }
table { border-collapse:collapse; width:100%; font-size:13.5px; margin:6px 0 14px;
  font-variant-numeric:tabular-nums; }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#f0f2f5; font-weight:600; }
td.num, th.num { text-align:right; white-space:nowrap; }
tr.strongest td { font-weight:650; }
td.good { color:var(--good); } td.warn { color:#a86f00; } td.bad { color:var(--bad); }
details { margin:6px 0; } summary { cursor:pointer; font-weight:600; }
.scroll { overflow-x:auto; }
pre { background:#f3f4f7; border:1px solid var(--line); border-radius:6px; padding:10px 12px; overflow:auto;
  font-size:12px; line-height:1.4; max-height:420px; }
code { font-size:12.5px; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:10px 0 30px; }
.warning { background:#fff6e0; border:1px solid #f0d48a; border-radius:6px; padding:8px 12px; font-size:13.5px; }
"""


class Card(NamedTuple):
    """A headline number: a label, a big value, a detail line and a tone (colour)."""

    label: str
    """Small caps title (e.g. ``"Clean return"``)."""
    value: str
    """The number as it should read."""
    detail: str
    """One line under it (the CI, the budget, the fraction of clean)."""
    tone: Tone = "neutral"
    """``good``/``warn``/``bad`` colour the value; ``cert`` marks a certified bound."""


class Section(NamedTuple):
    """One ``<section>`` of the page, listed in the table of contents."""

    id: str
    """Anchor id (letters, digits, ``-``)."""
    heading: str
    """The ``<h2>`` text."""
    body: str
    """Inner HTML, already escaped."""
    lead: str = ""
    """A one-line explanation under the heading (plain text)."""


def esc(text: Any) -> str:
    """HTML-escape ``str(text)`` (quotes included)."""
    return html.escape(str(text), quote=True)


def _cls(names: str) -> str:
    return f' class="{esc(names)}"' if names else ""


def cards_html(cards: Sequence[Card]) -> str:
    """A responsive grid of headline cards."""
    items = [
        f'<div class="card {esc(c.tone)}"><div class="label">{esc(c.label)}</div>'
        f'<div class="value">{esc(c.value)}</div><div class="detail">{esc(c.detail)}</div></div>'
        for c in cards
    ]
    return '<div class="cards">' + "".join(items) + "</div>"


def figure_html(svg: bytes | None, png: bytes | None, *, alt: str, caption: str = "", fig_id: str = "") -> str:
    """A ``<figure>`` with the image embedded as a ``data:`` URI (SVG preferred, PNG otherwise).

    Args:
        svg: the SVG document bytes, or None.
        png: the PNG bytes, used when ``svg`` is None.
        alt: alternative text describing the figure.
        caption: caption under the figure (plain text).
        fig_id: optional element id.

    """
    if svg is not None:
        uri = "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")
    elif png is not None:
        uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    else:
        raise ValueError("figure_html needs SVG or PNG bytes")
    ident = f' id="{esc(fig_id)}"' if fig_id else ""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure{ident}><img src="{uri}" alt="{esc(alt)}">{cap}</figure>'


def table_html(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    numeric: Sequence[bool] | None = None,
    row_classes: Sequence[str] | None = None,
    cell_classes: Sequence[Sequence[str]] | None = None,
    table_id: str = "",
) -> str:
    """A plain table; ``numeric[j]`` right-aligns column ``j``; classes colour rows or cells."""
    ncol = len(header)
    num = list(numeric) if numeric is not None else [False] * ncol
    if len(num) != ncol:
        raise ValueError(f"numeric has {len(num)} flags for {ncol} columns")
    head = "".join(f"<th{_cls('num' if n else '')}>{esc(h)}</th>" for h, n in zip(header, num))
    body = []
    for i, row in enumerate(rows):
        if len(row) != ncol:
            raise ValueError(f"table row {i} has {len(row)} cells for {ncol} columns")
        cells = []
        for j, v in enumerate(row):
            cls = " ".join(c for c in ("num" if num[j] else "", cell_classes[i][j] if cell_classes else "") if c)
            cells.append(f"<td{_cls(cls)}>{esc(v)}</td>")
        rc = row_classes[i] if row_classes else ""
        body.append(f"<tr{_cls(rc)}>" + "".join(cells) + "</tr>")
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def json_details(summary: str, data: Any, *, open_: bool = False) -> str:
    """A collapsible ``<details>`` block showing ``data`` as indented JSON."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str)
    return f"<details{' open' if open_ else ''}><summary>{esc(summary)}</summary><pre>{esc(text)}</pre></details>"


def page_html(title: str, subtitle: str, sections: Sequence[Section], *, footer: str = "") -> str:
    """The whole page: header, table of contents, sections, footer; CSS inline, no scripts."""
    for s in sections:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", s.id):
            raise ValueError(f"section id {s.id!r} must be letters, digits and '-'")
    toc = "".join(f'<a href="#{s.id}">{esc(s.heading)}</a>' for s in sections)
    body = "".join(
        f'<section id="{s.id}"><h2>{esc(s.heading)}</h2>'
        + (f'<p class="lead">{esc(s.lead)}</p>' if s.lead else "")
        + s.body
        + "</section>"
        for s in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f'<header class="top"><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>'
        f'<nav class="toc">{toc}</nav><main>{body}</main>'
        f"<footer>{esc(footer)}</footer></body></html>\n"
    )


_URL_ATTRS = frozenset(
    {"src", "href", "xlink:href", "action", "formaction", "poster", "data", "background", "cite", "longdesc",
     "usemap", "manifest", "ping", "codebase", "archive", "lowsrc", "dynsrc", "srcset", "imagesrcset"}
)  # fmt: skip
"""Attributes whose value a browser may fetch (``srcset``-style ones hold several URLs)."""
_CODE_TAGS = frozenset({"script", "link", "iframe", "frame", "frameset", "object", "embed", "applet", "base", "portal"})
"""Tags that load or run something whatever their attributes."""
_CSS_URL = re.compile(r"""url\(\s*["']?([^"')]*)""", re.I)


def _local(ref: str) -> bool:
    """Whether a URL stays in the page: an in-page ``#anchor`` or a ``data:`` URI."""
    ref = ref.strip()
    return ref.startswith("#") or ref.lower().startswith("data:")


class _References(HTMLParser):
    """Collects what in a page would make a browser load something or run code (see :func:`external_references`)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.bad: list[str] = []
        self._style = 0

    def _css(self, text: str) -> None:
        self.bad += [m.group(1) for m in _CSS_URL.finditer(text) if not _local(m.group(1))]
        if "@import" in text.lower():
            self.bad.append("@import")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _CODE_TAGS:
            self.bad.append(f"<{tag}")
        if tag == "meta" and any(k == "http-equiv" for k, _ in attrs):
            self.bad.append("<meta http-equiv")
        if tag == "style":
            self._style += 1
        for key, value in attrs:
            text = value or ""
            if key.startswith("on"):
                self.bad.append(f"{key}=")  # an event handler is code
            elif key in ("srcset", "imagesrcset"):
                self.bad += [c.split()[0] for c in text.split(",") if c.strip() and not _local(c.split()[0])]
            elif key in _URL_ATTRS and not _local(text):
                self.bad.append(text)
            elif key == "style":
                self._css(text)

    def handle_endtag(self, tag: str) -> None:
        if tag == "style" and self._style:
            self._style -= 1

    def handle_data(self, data: str) -> None:
        if self._style:
            self._css(data)


def external_references(page: str) -> list[str]:
    """Everything in ``page`` that would make a browser load something or run code.

    The page is parsed as HTML, so only real tags and attributes count, never text (an escaped policy
    path such as ``data=v2/policy.zip`` in a table cell is text). Returns the offending references:
    URL-valued attributes (``src``, ``href``, ``xlink:href``, ``data``, ``srcset``, ...) and CSS ``url(...)``
    in ``<style>`` or a ``style`` attribute that are neither a ``data:`` URI nor an in-page ``#anchor``,
    CSS ``@import``, event-handler attributes (``onload=``...), and any ``<script>``, ``<link>``,
    ``<iframe>``, ``<object>``, ``<embed>``, ``<base>`` or ``<meta http-equiv>`` tag. An empty list means
    the page is self-contained.

    Example:
        >>> external_references('<p>data=v2/policy.zip</p><img src="https://x.org/a.png">')
        ['https://x.org/a.png']
    """
    parser = _References()
    parser.feed(page)
    parser.close()
    return parser.bad
