"""registry/migrations/0002_groups: the four groups exist with their model permissions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from aegis_catalog.web.permissions import can_browse, can_import, user_in_group
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def perms(name: str) -> set[str]:
    return {
        f"{p.content_type.app_label}.{p.codename}"
        for p in Group.objects.get(name=name).permissions.select_related("content_type")
    }


def test_it_creates_the_four_groups_with_sensible_permissions():
    assert {"viewer", "importer", "auditor", "registry-admin"} <= set(
        Group.objects.values_list("name", flat=True)
    )
    assert "registry.view_modelversion" in perms("viewer")
    assert "imports.add_importrequest" not in perms("viewer")
    assert "imports.add_importrequest" in perms("importer")
    assert "registry.view_signingkey" in perms("auditor")
    assert not any(
        p.split(".")[1].startswith(("add_", "change_", "delete_")) for p in perms("auditor")
    )
    assert "registry.change_registeredmodel" in perms("registry-admin")


def test_it_gives_importers_import_rights_and_viewers_only_browsing():
    importer = make_user("imp", "importer")
    viewer = make_user("view", "viewer")
    outsider = make_user("out")
    root = make_user("root", is_superuser=True)

    assert can_import(importer) and can_browse(importer)
    assert can_browse(viewer) and not can_import(viewer)
    assert not can_browse(outsider) and not can_import(outsider)
    assert can_import(root) and user_in_group(root, "auditor")


def test_it_denies_inactive_users():
    user = make_user("gone", "importer", is_active=False)

    assert not can_browse(user)
