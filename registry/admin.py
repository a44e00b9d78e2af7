"""The registry in the Django admin: every edit goes through ``registry.actions`` and is audited.

Integrity fields (digests, signatures, manifest, source, who and when) are read-only; a POST that
tries to change them is ignored because the form does not carry them. Versions are deprecated,
yanked and restored by admin actions that require a reason. Audit events are read-only.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from registry import actions
from registry.models import (
    AuditEvent,
    ImportPolicy,
    ModelVersion,
    PolicyOverride,
    RegisteredModel,
    SigningKey,
)
from registry.policy import canonical_license_ids


def actor_of(request: HttpRequest) -> str:
    return str(request.user.get_username())


class AuditedModelAdmin(admin.ModelAdmin):
    """Saves through an audited action instead of ``obj.save()``; no adding or deleting."""

    editable_fields: tuple[str, ...] = ()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [
            field.name
            for field in self.model._meta.get_fields()
            if getattr(field, "concrete", False) and field.name not in self.editable_fields
        ]

    def edit(self, obj: Any, changes: dict[str, Any], request: HttpRequest) -> None:
        raise NotImplementedError

    def save_model(
        self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool
    ) -> None:
        changes = {
            name: form.cleaned_data[name]
            for name in form.changed_data
            if name in self.editable_fields
        }
        stored = type(obj).objects.get(pk=obj.pk)
        try:
            self.edit(stored, changes, request)
        except actions.RegistryError as error:
            raise PermissionDenied(str(error)) from error


@admin.register(RegisteredModel)
class RegisteredModelAdmin(AuditedModelAdmin):
    editable_fields = actions.MODEL_EDITABLE_FIELDS
    list_display = ("name", "author", "license", "pipeline_tag", "library_name", "updated_at")
    list_filter = ("license", "pipeline_tag", "library_name", "gated", "author")
    search_fields = ("name", "author", "source_repo", "base_model", "license", "pipeline_tag")

    def edit(self, obj: Any, changes: dict[str, Any], request: HttpRequest) -> None:
        actions.edit_model(obj, changes, actor=actor_of(request), user=request.user)


class ReasonActionForm(ActionForm):
    reason = forms.CharField(
        required=False, max_length=500, help_text="required to deprecate, yank or restore"
    )


@admin.register(ModelVersion)
class ModelVersionAdmin(AuditedModelAdmin):
    editable_fields = actions.VERSION_EDITABLE_FIELDS
    list_display = (
        "model",
        "version",
        "status",
        "license",
        "short_sha256",
        "imported_by",
        "imported_at",
    )
    list_filter = (
        "status",
        "license",
        "model__pipeline_tag",
        "model__library_name",
        "signing_key__name",
    )
    search_fields = (
        "model__name",
        "version",
        "sha256",
        "source_repo",
        "source_commit",
        "imported_by",
    )
    list_select_related = ("model", "signing_key")
    action_form = ReasonActionForm
    actions = ("deprecate", "yank", "restore")

    @admin.display(description="sha256")
    def short_sha256(self, obj: ModelVersion) -> str:
        return obj.sha256[:16]

    def edit(self, obj: Any, changes: dict[str, Any], request: HttpRequest) -> None:
        actions.edit_version(obj, changes, actor=actor_of(request), user=request.user)

    def _set_status(
        self, request: HttpRequest, queryset: QuerySet[ModelVersion], status: str
    ) -> None:
        reason = (request.POST.get("reason") or "").strip()
        if not reason:
            self.message_user(
                request, "Give a reason: it is kept in the audit trail.", messages.ERROR
            )
            return
        for version in queryset.select_related("model"):
            actions.set_version_status(
                version, status, actor=actor_of(request), reason=reason, user=request.user
            )
        self.message_user(request, f"{queryset.count()} version(s) now {status}.")

    @admin.action(description="Deprecate the selected versions (reason required)")
    def deprecate(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        self._set_status(request, queryset, ModelVersion.Status.DEPRECATED)

    @admin.action(description="Yank the selected versions (reason required)")
    def yank(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        self._set_status(request, queryset, ModelVersion.Status.YANKED)

    @admin.action(description="Restore the selected versions to active (reason required)")
    def restore(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        self._set_status(request, queryset, ModelVersion.Status.ACTIVE)


@admin.register(SigningKey)
class SigningKeyAdmin(AuditedModelAdmin):
    editable_fields = ("revoked",)
    list_display = ("name", "version", "algorithm", "fingerprint", "revoked", "vault_addr")
    list_filter = ("name", "revoked", "algorithm")
    search_fields = ("name", "fingerprint")

    def edit(self, obj: Any, changes: dict[str, Any], request: HttpRequest) -> None:
        if "revoked" not in changes:
            return
        if not changes["revoked"]:
            raise actions.RegistryError("a revoked key stays revoked; add a new key version")
        actions.revoke_signing_key(
            obj, actor=actor_of(request), reason="revoked in the admin", user=request.user
        )


class ImportPolicyForm(forms.ModelForm):
    """The allow-list as text (SPDX ids separated by commas or spaces), checked against SPDX."""

    allowed_licenses = forms.CharField(
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="SPDX license ids, separated by commas (MIT, Apache-2.0, BSD-3-Clause); "
        "empty: any license",
    )

    class Meta:
        model = ImportPolicy
        fields = actions.POLICY_EDITABLE_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial["allowed_licenses"] = ", ".join(self.instance.allowed_licenses or [])

    def clean_allowed_licenses(self) -> list[str]:
        text = self.cleaned_data.get("allowed_licenses") or ""
        values = [item for item in text.replace(",", " ").split() if item]
        try:
            return canonical_license_ids(values)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None


@admin.register(ImportPolicy)
class ImportPolicyAdmin(AuditedModelAdmin):
    """The one policy row: every change is an audited action with before and after."""

    form = ImportPolicyForm
    editable_fields = actions.POLICY_EDITABLE_FIELDS
    fields = (*actions.POLICY_EDITABLE_FIELDS, "updated_at")

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        policy = ImportPolicy.current()
        return HttpResponseRedirect(reverse("admin:registry_importpolicy_change", args=[policy.pk]))

    def edit(self, obj: Any, changes: dict[str, Any], request: HttpRequest) -> None:
        actions.edit_import_policy(obj, changes, actor=actor_of(request), user=request.user)


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """Shown, never added, changed or deleted in the admin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PolicyOverride)
class PolicyOverrideAdmin(ReadOnlyModelAdmin):
    """Overrides are granted on the import page (audited); here they are read-only."""

    list_display = ("import_request", "rule", "granted_by", "granted_at", "used_at", "reason")
    list_filter = ("rule",)
    search_fields = ("granted_by", "reason")


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyModelAdmin):
    list_display = ("sequence", "created_at", "actor", "action", "object_repr")
    list_filter = ("action", "object_type")
    search_fields = ("actor", "object_repr", "model_name")
    ordering = ("-sequence",)
