"""Small HTML builders for the site: every text and attribute value goes through :func:`html.escape` here."""

from __future__ import annotations

import html
from collections.abc import Iterable

from zsl_bench.report.site.assets import CSS, JS

Attrs = dict[str, object]


def esc(text: object) -> str:
    """``text`` (any value, ``None`` as empty) escaped for HTML text and quoted attribute values."""
    return html.escape("" if text is None else str(text), quote=True)


def attrs(values: Attrs | None) -> str:
    """`` key="value"`` pairs (a ``None`` value leaves the attribute out; keys with ``_`` become ``-``)."""
    parts = [f' {k.replace("_", "-")}="{esc(v)}"' for k, v in (values or {}).items() if v is not None]
    return "".join(parts)


def tag(name: str, inner: str = "", values: Attrs | None = None) -> str:
    """``<name attrs>inner</name>``; ``inner`` is markup already (escape text with :func:`esc` first)."""
    return f"<{name}{attrs(values)}>{inner}</{name}>"


def text(name: str, content: object, values: Attrs | None = None) -> str:
    """An element holding escaped ``content``."""
    return tag(name, esc(content), values)


def link(href: str, content: object, values: Attrs | None = None) -> str:
    """A relative link (the site never links out of itself by URL)."""
    return tag("a", esc(content), {"href": href, **(values or {})})


def image(src: str, alt: str) -> str:
    """A plot: a PNG file of the site, by relative path."""
    return f'<img class="plot"{attrs({"src": src, "alt": alt})}>'


def missing(why: str) -> str:
    """The placeholder of a plot or table whose data is missing, saying why."""
    return text("p", why, {"class": "missing"})


def paragraphs(lines: Iterable[str], cls: str) -> str:
    """One ``<p class=cls>`` per non-empty line."""
    return "\n".join(text("p", line, {"class": cls}) for line in lines if line.strip())


def simple_table(headers: list[str], body: Iterable[list[str]], values: Attrs | None = None) -> str:
    """A table of escaped text cells."""
    head = tag("tr", "".join(text("th", h) for h in headers))
    lines = "\n".join(tag("tr", "".join(text("td", c) for c in cells)) for cells in body)
    return tag("table", f"<thead>{head}</thead>\n<tbody>\n{lines}\n</tbody>", values)


def section(ident: str, title: str, inner: str) -> str:
    """``<section id=ident>`` with an ``<h2>`` title."""
    return tag("section", f"\n{text('h2', title)}\n{inner}\n", {"id": ident}) + "\n"


def page(title: str, body: str) -> str:
    """A complete HTML document: inline style and script, no external resource of any kind."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"{text('title', title)}\n"
        '<link rel="icon" href="data:,">\n'
        f"<style>{CSS}</style>\n</head>\n<body>\n{body}\n<script>{JS}</script>\n</body>\n</html>\n"
    )
