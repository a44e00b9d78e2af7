"""Which URLs a webhook may point at: not the app itself, not link-local addresses (the cloud
metadata endpoint 169.254.169.254 and its IPv6 forms), over http or https.

A webhook is a request the server makes on an admin's behalf: pointed at the app it would reach
its own endpoints from inside, pointed at a metadata address it would fetch the machine's cloud
credentials. The host's addresses are resolved when the webhook is saved and again before each
delivery (a name can be pointed elsewhere later). The app's own hosts are those of
``ALLOWED_HOSTS`` (the names, and the addresses they resolve to).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from django.http.request import validate_host

METADATA_NAMES = ("metadata.google.internal", "metadata", "instance-data")


class UnsafeWebhookURL(ValueError):
    """The URL may not receive webhooks; the message says why."""


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _addresses(host: str, port: int) -> set[IPAddress]:
    try:
        found = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as error:
        raise UnsafeWebhookURL(f"{host} does not resolve ({error})") from None
    addresses: set[IPAddress] = set()
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        mapped = getattr(address, "ipv4_mapped", None)
        addresses.add(mapped or address)
    return addresses


def _own_addresses(own_hosts: Iterable[str]) -> set[IPAddress]:
    """What the app's own host names resolve to (names that do not resolve: none)."""
    addresses: set[IPAddress] = set()
    for host in own_hosts:
        name = host.lstrip(".").strip("[]")
        if not name or name == "*":
            continue
        try:
            addresses |= _addresses(name, 80)
        except UnsafeWebhookURL:
            continue
    return addresses


def check_webhook_url(url: str, own_hosts: Iterable[str]) -> None:
    """Raise UnsafeWebhookURL unless ``url`` may receive webhooks."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeWebhookURL("a webhook URL is http:// or https:// with a host")
    if parts.username or parts.password:
        raise UnsafeWebhookURL("a webhook URL carries no user or password: sign with the secret")
    host = parts.hostname.rstrip(".").lower()
    own = [item for item in own_hosts if item != "*"]
    if validate_host(f"[{host}]" if ":" in host else host, own):
        raise UnsafeWebhookURL(f"{host} is this application itself (DJANGO_ALLOWED_HOSTS)")
    if host in METADATA_NAMES:
        raise UnsafeWebhookURL(f"{host} is a cloud metadata service")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeWebhookURL("the URL's port is not a number from 0 to 65535") from None
    addresses = _addresses(host, port)
    for address in sorted(addresses, key=str):
        if address.is_link_local or address.is_unspecified or address.is_multicast:
            raise UnsafeWebhookURL(
                f"{host} resolves to {address}, a link-local, unspecified or multicast address "
                "(cloud metadata services answer on link-local addresses)"
            )
    itself = addresses & _own_addresses(own)
    if itself:
        shown = ", ".join(sorted(str(item) for item in itself))
        raise UnsafeWebhookURL(f"{host} resolves to {shown}, an address of this application")
