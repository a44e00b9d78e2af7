"""Model cards: Markdown from the Hub, rendered to HTML that is safe to put in our pages.

A card is written by whoever owns the Hub repo, so it is hostile input: raw HTML in it is
kept only as far as a strict allow-list goes (no script, iframe, style or event attributes,
no ``javascript:`` or ``data:`` links; images only as a plain ``<img src>`` with an http(s) URL).
"""

from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt

# YAML front matter: the card's metadata block, shown as chips rather than as text.
_FRONT_MATTER = re.compile(
    r"\A\ufeff?---[ \t]*\r?\n.*?^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S | re.M
)

ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt",
        "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p",
        "pre", "s", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot",
        "th", "thead", "tr", "ul",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"align"},
    "th": {"align"},
    "code": {"class"},
    "ol": {"start"},
}
_CODE_CLASS = re.compile(r"language-[A-Za-z0-9_+-]{1,40}")
LINK_REL = "noopener noreferrer nofollow"

_markdown = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def strip_front_matter(text: str) -> str:
    """The card text without its leading YAML metadata block (if any)."""
    return _FRONT_MATTER.sub("", text, count=1)


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src":
        return value if value.lower().startswith(("https://", "http://")) else None
    if tag == "code" and attribute == "class":
        return value if _CODE_CLASS.fullmatch(value) else None
    return value


def sanitize_html(html: str) -> str:
    """HTML reduced to the allow-list above; links get ``rel="noopener noreferrer nofollow"``."""
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags={"script", "style"},
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_filter_attribute,
        url_schemes={"http", "https", "mailto"},
        link_rel=LINK_REL,
        strip_comments=True,
    )


def render_card(text: str) -> str:
    """A model card's Markdown (with optional YAML front matter) as sanitized HTML."""
    return sanitize_html(_markdown.render(strip_front_matter(text)))
