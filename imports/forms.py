"""Forms for the catalog and import pages. GET parameters are validated like any other input."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from django import forms
from django.conf import settings

from aegis_catalog.lib.hub import (
    HubError,
    InvalidSearchParameter,
    check_search_cursor,
    validate_revision,
)
from aegis_catalog.web.forms import MAX_PAGE, MAX_QUERY_LENGTH, per_page_field
from imports.actions import ImportOptions
from imports.models import ImportRequest
from registry.models import default_version, name_validator, version_validator

MAX_CURSOR_LENGTH = 2000

# The Hub's pipeline tags, libraries and licenses people filter by (https://huggingface.co/models).
TASKS = (
    "audio-classification", "audio-to-audio", "automatic-speech-recognition",
    "depth-estimation", "document-question-answering", "feature-extraction", "fill-mask",
    "image-classification", "image-feature-extraction", "image-segmentation",
    "image-text-to-text", "image-to-image", "image-to-text", "mask-generation",
    "object-detection", "question-answering", "reinforcement-learning", "sentence-similarity",
    "summarization", "table-question-answering", "tabular-classification",
    "tabular-regression", "text-classification", "text-generation", "text-ranking",
    "text-to-audio", "text-to-image", "text-to-speech", "text-to-video", "text2text-generation",
    "time-series-forecasting", "token-classification", "translation", "video-classification",
    "visual-question-answering", "zero-shot-classification", "zero-shot-image-classification",
    "zero-shot-object-detection",
)  # fmt: skip
LIBRARIES = (
    "adapter-transformers", "allennlp", "diffusers", "fastai", "flair", "gguf", "jax", "keras",
    "mlx", "onnx", "open_clip", "openvino", "paddlenlp", "peft", "pytorch", "safetensors",
    "sentence-transformers", "setfit", "sklearn", "spacy", "speechbrain", "stable-baselines3",
    "tensorboard", "tf", "tflite", "timm", "transformers", "transformers.js",
)  # fmt: skip
LICENSES = (
    "afl-3.0", "agpl-3.0", "apache-2.0", "artistic-2.0", "bigscience-bloom-rail-1.0",
    "bigscience-openrail-m", "bsd", "bsd-2-clause", "bsd-3-clause", "bsl-1.0", "cc", "cc0-1.0",
    "cc-by-2.0", "cc-by-3.0", "cc-by-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0",
    "cc-by-nc-nd-4.0", "cc-by-nc-sa-4.0", "cc-by-nd-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0",
    "creativeml-openrail-m", "ecl-2.0", "epl-2.0", "gemma", "gpl", "gpl-2.0", "gpl-3.0",
    "isc", "lgpl-3.0", "llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "llama4", "mit",
    "mpl-2.0", "ms-pl", "odc-by", "openrail", "openrail++", "other", "postgresql",
    "unlicense", "wtfpl", "zlib",
)  # fmt: skip
# What the catalog offers to sort by -> the HubClient.search sort name.
SORTS = {
    "downloads": ("Most downloads", "downloads"),
    "likes": ("Most likes", "likes"),
    "updated": ("Recently updated", "last_modified"),
}


def _choices(values: tuple[str, ...], empty: str) -> list[tuple[str, str]]:
    return [("", empty), *((value, value) for value in values)]


class SearchForm(forms.Form):
    """The catalog's search box and filters (GET)."""

    q = forms.CharField(label="Search", required=False, max_length=MAX_QUERY_LENGTH, strip=True)
    task = forms.ChoiceField(label="Task", required=False, choices=_choices(TASKS, "any task"))
    library = forms.ChoiceField(
        label="Library", required=False, choices=_choices(LIBRARIES, "any library")
    )
    license = forms.ChoiceField(
        label="License", required=False, choices=_choices(LICENSES, "any license")
    )
    sort = forms.ChoiceField(
        label="Sort",
        required=False,
        choices=[(key, label) for key, (label, _) in SORTS.items()],
    )
    page = forms.IntegerField(label="Page", required=False, min_value=1, max_value=MAX_PAGE)
    cursor = forms.CharField(label="Page cursor", required=False, max_length=MAX_CURSOR_LENGTH)

    FIELDS = {"q", "task", "library", "license", "sort", "page", "cursor"}

    def clean_q(self) -> str:
        value: str = self.cleaned_data["q"]
        if any(ord(char) < 32 for char in value):
            raise forms.ValidationError("The search text cannot contain control characters.")
        return " ".join(value.split())

    def clean_sort(self) -> str:
        return self.cleaned_data["sort"] or "downloads"

    def clean_cursor(self) -> str:
        """Only the Hub's opaque page token: the search's own fields make the rest of the next
        page's request, so nothing from the browser's URL reaches the Hub."""
        value: str = self.cleaned_data["cursor"]
        if not value:
            return ""
        try:
            return check_search_cursor(value)
        except InvalidSearchParameter as error:
            raise forms.ValidationError(str(error)) from None

    @property
    def hub_sort(self) -> str:
        return SORTS[self.cleaned_data["sort"]][1]

    def cache_key(self) -> str:
        """The normalised search: same key for the same results."""
        data = self.cleaned_data
        return "|".join(
            [
                data["q"].lower(),
                data["task"],
                data["library"],
                data["license"],
                data["sort"],
                data["cursor"],
            ]
        )


class RevisionForm(forms.Form):
    """The optional ``?revision=`` of a Hub model page."""

    revision = forms.CharField(label="Revision", required=False, max_length=200)

    FIELDS = {"revision"}


MAX_PATTERNS = 100
MAX_PATTERN_LENGTH = 300


def _pattern_list(value: str) -> list[str]:
    patterns = [item.strip() for item in re.split(r"[\n,]", value) if item.strip()]
    if len(patterns) > MAX_PATTERNS:
        raise forms.ValidationError(f"At most {MAX_PATTERNS} patterns.")
    for pattern in patterns:
        if len(pattern) > MAX_PATTERN_LENGTH or re.search(r"[\x00-\x1f\x7f]", pattern):
            raise forms.ValidationError(
                f"{pattern[:60]!r} is not a file pattern: at most {MAX_PATTERN_LENGTH} "
                "characters, no control characters."
            )
    return patterns


def _model_name(value: str) -> None:
    try:
        name_validator(value)
    except forms.ValidationError as error:
        raise forms.ValidationError(
            f"invalid model name {value!r}: {' '.join(error.messages)}"
        ) from None


def _version(value: str) -> None:
    try:
        version_validator(value)
    except forms.ValidationError as error:
        raise forms.ValidationError(
            f"invalid version {value!r}: {' '.join(error.messages)}"
        ) from None


def _revision(value: str) -> None:
    try:
        validate_revision(value)
    except HubError as error:
        raise forms.ValidationError(str(error)) from None


class ImportForm(forms.Form):
    """The import form of a Hub model page; ``imports.actions`` validates it once more."""

    model_name = forms.CharField(label="Model name", max_length=100, validators=[_model_name])
    version = forms.CharField(label="Version", max_length=64, validators=[_version])
    revision = forms.CharField(
        label="Revision", max_length=200, initial="main", validators=[_revision]
    )
    include = forms.CharField(
        label="Include patterns",
        required=False,
        max_length=3000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One glob per line or comma-separated, e.g. *.safetensors. Empty: every file.",
    )
    exclude = forms.CharField(
        label="Exclude patterns",
        required=False,
        max_length=3000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Files matching any of these are left out, e.g. *.bin.",
    )
    upload_s3 = forms.BooleanField(label="Upload to S3", required=False)
    register = forms.BooleanField(label="Register in the registry", required=False, initial=True)

    def clean_include(self) -> list[str]:
        return _pattern_list(self.cleaned_data["include"])

    def clean_exclude(self) -> list[str]:
        return _pattern_list(self.cleaned_data["exclude"])

    def clean_upload_s3(self) -> bool:
        value: bool = self.cleaned_data["upload_s3"]
        if value and not settings.AEGIS_S3_BUCKET:
            raise forms.ValidationError("No S3 bucket is configured (AEGIS_S3_BUCKET).")
        return value

    def import_options(self, repo_id: str, revision: str) -> ImportOptions:
        """The cleaned form as the options ``imports.actions.start_import`` takes."""
        data = self.cleaned_data
        return ImportOptions(
            repo_id=repo_id,
            model_name=data["model_name"],
            version=data["version"],
            revision=revision,
            include=data["include"],
            exclude=data["exclude"],
            upload_s3=data["upload_s3"],
            register=data["register"],
        )


def import_form_initial(repo_name: str, commit: str, revision: str, today: date) -> dict[str, Any]:
    return {
        "model_name": repo_name,
        "version": default_version(commit, today),
        "revision": revision,
        "upload_s3": bool(settings.AEGIS_S3_BUCKET),
        "register": True,
    }


class ImportListForm(forms.Form):
    """Filters and paging of the imports list (GET)."""

    mine = forms.ChoiceField(label="Whose", required=False, choices=[("", "all"), ("1", "mine")])
    status = forms.ChoiceField(
        label="Status",
        required=False,
        choices=[("", "any status"), *ImportRequest.Status.choices],
    )
    page = forms.IntegerField(label="Page", required=False, min_value=1, max_value=MAX_PAGE)
    per_page = per_page_field()

    FIELDS = {"mine", "status", "page", "per_page"}
