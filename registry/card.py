"""The model card fields the registry keeps as real columns, read from a Hub model (no Django)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aegis_catalog.lib.hub import HubModel


@dataclass(frozen=True)
class CardMetadata:
    """Model card fields the registry keeps as real columns."""

    author: str = ""
    license: str = ""
    pipeline_tag: str = ""
    library_name: str = ""
    base_model: str = ""
    tags: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    gated: str = "no"


def as_list(value: Any) -> tuple[str, ...]:
    """A card field given as one value or a list, as a tuple of non-empty strings."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value if item is not None and str(item) != "")
    return (str(value),)


def card_metadata(model: HubModel) -> CardMetadata:
    """The card fields from the card's YAML, falling back to the Hub's own fields: one
    extraction for the registry's columns and the Hub model page."""
    card = model.card_data or {}
    gated = model.gated
    gated_value = (
        "no" if not gated else (str(gated) if str(gated) in ("auto", "manual") else "auto")
    )
    base_models = as_list(card.get("base_model"))
    return CardMetadata(
        author=str(model.author or model.repo_id.split("/", 1)[0]),
        license=", ".join(as_list(card.get("license"))) or (model.license or ""),
        pipeline_tag=str(card.get("pipeline_tag") or model.pipeline_tag or ""),
        library_name=str(card.get("library_name") or model.library_name or ""),
        base_model=", ".join(base_models),
        tags=as_list(card.get("tags")) or tuple(model.tags),
        datasets=as_list(card.get("datasets")),
        languages=as_list(card.get("language")),
        gated=gated_value,
    )
