"""Must-show 3, in Chromium: a hostile model card renders with nothing in it active."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.chromium import Screenshots, chromium_page, require_chromium, sign_in
from tests.factories import PASSWORD, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


def test_it_renders_a_hostile_card_with_no_script_running(hub, live_server, request):
    require_chromium()
    from playwright.sync_api import expect

    make_user("bob", "viewer")
    shots = Screenshots(request.node.name)
    dialogs: list[str] = []
    console_errors: list[str] = []

    with chromium_page(live_server.url) as page:

        def on_dialog(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        def on_console(message: Any) -> None:
            if message.type == "error":
                console_errors.append(message.text)

        page.on("dialog", on_dialog)
        page.on("console", on_console)
        sign_in(page, "bob", PASSWORD)
        page.goto("/hub/acme/hostile-card/")
        page.wait_for_load_state("networkidle")
        card = page.locator("#model-card")
        expect(card.locator("h1")).to_have_text("Totally normal model")

        # Try what a visitor might do: hover the div, click the link, wait for image errors.
        card.get_by_text("hover").hover()
        card.get_by_text("this link").click()
        page.wait_for_timeout(500)
        shots(page, "hostile-card")

        assert not any("alert" in text for text in page.locator("script").all_text_contents())
        assert card.locator("script").count() == 0
        assert page.locator("iframe").count() == 0
        assert page.locator("[onerror], [onload], [onmouseover], [onclick]").count() == 0
        assert page.locator("a[href^='javascript:' i]").count() == 0
        assert page.locator("[style*='javascript' i]").count() == 0
        assert page.url.endswith("/hub/acme/hostile-card/")  # the link went nowhere
        assert dialogs == []

        # The watcher works: a real alert is seen (so the empty list above means something).
        page.evaluate("setTimeout(() => alert('probe'), 0)")
        page.wait_for_timeout(200)
        assert dialogs == ["probe"]
