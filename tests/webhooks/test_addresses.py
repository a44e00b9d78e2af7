"""Webhook URLs that are refused: the app itself, link-local (metadata) addresses, odd URLs."""

from __future__ import annotations

import pytest

from webhooks.addresses import UnsafeWebhookURL, check_webhook_url

OWN = ["aegis.example.com", "localhost", "127.0.0.1", "[::1]"]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://aegis.example.com/hooks", "this application itself"),
        ("https://AEGIS.example.com./x", "this application itself"),
        ("http://localhost:8000/admin/", "this application itself"),
        ("http://127.0.0.1:8000/", "this application itself"),
        ("http://[::1]:8000/", "this application itself"),
        ("http://no-such-host.invalid/", "does not resolve"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://0.0.0.0:9000/", "unspecified"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata"),
        ("ftp://receiver.example/", "http:// or https://"),
        ("http://user:pw@receiver.example/", "no user or password"),
        ("http:///nohost", "http:// or https://"),
    ],
)
def test_it_refuses(url, why):
    with pytest.raises(UnsafeWebhookURL, match=why):
        check_webhook_url(url, OWN)


def test_it_refuses_a_name_that_resolves_to_the_apps_own_address():
    # "localhost" is not named in the list, but resolves to 127.0.0.1, which is.
    with pytest.raises(UnsafeWebhookURL, match="an address of this application"):
        check_webhook_url("http://localhost:9999/", ["127.0.0.1"])


def test_it_accepts_a_receiver_elsewhere():
    check_webhook_url("http://127.0.0.1:9999/hooks", ["aegis.example.com", "testserver"])
    check_webhook_url("https://10.1.2.3/hooks", OWN)
