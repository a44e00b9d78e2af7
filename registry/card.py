"""The model card fields the registry keeps as real columns (plain data, no Django)."""

from __future__ import annotations

from dataclasses import dataclass


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
