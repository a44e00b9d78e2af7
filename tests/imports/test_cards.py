"""imports.cards: hostile Markdown/HTML from a model card becomes inert HTML."""

from __future__ import annotations

from devservers.hub_double import HOSTILE_CARD
from imports.cards import render_card, strip_front_matter


def test_it_removes_script_iframe_event_attributes_and_javascript_links():
    html = render_card(HOSTILE_CARD)

    lowered = html.lower()
    assert "<h1>totally normal model</h1>" in lowered
    assert "<script" not in lowered
    assert "alert(1)</script>" not in lowered
    assert "<iframe" not in lowered
    assert "onerror" not in lowered
    assert "onmouseover" not in lowered
    assert 'href="javascript:' not in lowered
    assert "style=" not in lowered
    assert "this link</a>" in lowered  # the link text stays, without its href


def test_it_strips_the_yaml_front_matter():
    text = "---\nlicense: mit\ntags:\n- a\n---\n# Title\n\nBody text.\n"

    assert strip_front_matter(text) == "# Title\n\nBody text.\n"
    html = render_card(text)
    assert "license" not in html
    assert "<h1>Title</h1>" in html


def test_it_keeps_only_http_images_as_plain_img_src():
    html = render_card(
        "![ok](https://example.org/a.png) ![rel](/local.png)"
        " ![data](data:image/png;base64,AAAA)\n\n"
        '<img src="http://example.org/b.png" onload="x()" style="width:9999px" class="c">'
    )

    assert '<img src="https://example.org/a.png" alt="ok">' in html
    assert '<img src="http://example.org/b.png">' in html
    assert "/local.png" not in html
    assert "data:" not in html
    assert "onload" not in html
    assert "class=" not in html


def test_it_marks_links_noopener_noreferrer_nofollow():
    html = render_card(
        "[docs](https://example.org/docs) <a href='https://x.example' target=_blank>x</a>"
    )

    assert '<a href="https://example.org/docs" rel="noopener noreferrer nofollow">docs</a>' in html
    assert "target=" not in html
    assert html.count('rel="noopener noreferrer nofollow"') == 2


def test_it_renders_tables_and_code_blocks():
    html = render_card("| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nprint(1)\n```\n")

    assert "<table>" in html and "<td>2</td>" in html
    assert '<code class="language-python">print(1)' in html
