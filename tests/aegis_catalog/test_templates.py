"""Template hygiene that Django does not check for us."""

from __future__ import annotations

from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def test_it_has_no_comment_tag_spanning_lines():
    # Django's {# #} comment ends on its own line: one that spans lines is printed on the page.
    unclosed = [
        f"{path.relative_to(TEMPLATES)}:{number}"
        for path in sorted(TEMPLATES.rglob("*.html"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if line.count("{#") > line.count("#}")
    ]
    assert unclosed == []


def test_it_renders_no_comment_text_on_the_sign_in_page(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b"{#" not in response.content
    assert b"#}" not in response.content
