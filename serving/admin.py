"""Registry admins choose which model answers for a Hub repo id; every change is audited."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from registry.admin import ReadOnlyModelAdmin
from registry.models import ModelVersion
from serving import actions
from serving.models import HubRepoChoice, ServedVersion


class HubRepoChoiceForm(forms.ModelForm):
    class Meta:
        model = HubRepoChoice
        fields = ("repo_id", "model")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        repo_id, model = cleaned.get("repo_id"), cleaned.get("model")
        if (
            repo_id
            and model is not None
            and not ModelVersion.objects.filter(model=model, source_repo=repo_id).exists()
        ):
            raise forms.ValidationError(f"No version of {model.name} was imported from {repo_id}.")
        return cleaned


@admin.register(HubRepoChoice)
class HubRepoChoiceAdmin(admin.ModelAdmin):
    form = HubRepoChoiceForm
    list_display = ("repo_id", "model", "chosen_by", "chosen_at")
    search_fields = ("repo_id", "model__name")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("repo_id",) if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: HubRepoChoice, form: Any, change: bool) -> None:
        saved = actions.choose_model_for_hub_repo(
            obj.repo_id, obj.model, actor=request.user.get_username(), user=request.user
        )
        if saved is not None:
            obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: HubRepoChoice) -> None:
        actions.choose_model_for_hub_repo(
            obj.repo_id, None, actor=request.user.get_username(), user=request.user
        )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[HubRepoChoice]) -> None:
        for choice in queryset:
            self.delete_model(request, choice)


@admin.register(ServedVersion)
class ServedVersionAdmin(ReadOnlyModelAdmin):
    """What the first pull of each version found."""

    list_display = ("version", "state", "checked_at", "failed_check")
    list_filter = ("state",)
