"""``/keys``: the trust store, every public key version read from Vault."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Query, Router

from aegis_catalog.web.permissions import BROWSE_GROUPS
from api import schemas
from api.auth import require
from api.errors import READ_ERRORS
from api.links import page_of
from registry.models import SigningKey

router = Router(tags=["registry"])


def key_out(key: SigningKey) -> schemas.SigningKeyOut:
    return schemas.SigningKeyOut(
        name=key.name,
        version=key.version,
        algorithm=key.algorithm,
        fingerprint=key.fingerprint,
        public_key_pem=key.public_key_pem,
        revoked=key.revoked,
        revoked_at=key.revoked_at,
        vault_created_at=key.vault_created_at,
        fetched_at=key.fetched_at,
    )


@router.get(
    "/keys",
    response={200: schemas.KeyPage, **READ_ERRORS},
    url_name="keys",
    operation_id="list_signing_keys",
)
def list_keys(request: HttpRequest, paging: Query[schemas.PageQuery]) -> schemas.KeyPage:
    """The trust store: every public key version read from Vault, revoked ones included."""
    require(request, BROWSE_GROUPS, "read the trust store")
    keys, info = page_of(
        request, SigningKey.objects.order_by("name", "-version", "pk"), paging.page,
        paging.per_page, {},
    )  # fmt: skip
    return schemas.KeyPage(**info, items=[key_out(key) for key in keys])
