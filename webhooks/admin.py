"""Webhooks in the admin (registry admins): added, changed and removed through audited actions;
deliveries shown, never edited."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest

from registry.admin import ReadOnlyModelAdmin
from webhooks import actions
from webhooks.events import EVENTS
from webhooks.models import Delivery, Webhook

EDITABLE = ("name", "url", "secret", "events", "active")


class WebhookForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="the shared secret the receiver checks the X-Aegis-Signature-256 header with "
        "(HMAC-SHA256 of the body); never shown again: leave empty to keep the current one",
    )
    events = forms.MultipleChoiceField(
        choices=list(EVENTS.items()),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="none ticked: every event",
    )

    class Meta:
        model = Webhook
        fields = list(EDITABLE)

    def clean_url(self) -> str:
        url = str(self.cleaned_data["url"])
        try:
            actions.check_url(url)
        except actions.WebhookError as error:
            raise forms.ValidationError(str(error)) from None
        return url

    def clean_secret(self) -> str:
        secret = str(self.cleaned_data.get("secret") or "")
        if not secret and self.instance.pk is None:
            raise forms.ValidationError("a new webhook needs a secret")
        if secret and len(secret) < 16:
            raise forms.ValidationError("use a secret of at least 16 characters")
        return secret


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    form = WebhookForm
    list_display = ("name", "url", "active", "created_by", "created_at")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        actor = str(request.user.get_username())
        try:
            if change:
                stored = Webhook.objects.get(pk=obj.pk)
                changes = {name: form.cleaned_data[name] for name in form.changed_data}
                actions.edit_webhook(stored, changes, actor=actor, user=request.user)
                obj.pk = stored.pk
            else:
                values = {name: form.cleaned_data[name] for name in EDITABLE}
                obj.pk = actions.add_webhook(values, actor=actor, user=request.user).pk
        except actions.WebhookError as error:
            raise PermissionDenied(str(error)) from error

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        actor = str(request.user.get_username())
        actions.remove_webhook(obj, actor=actor, user=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        for hook in queryset:
            self.delete_model(request, hook)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyModelAdmin):
    list_display = (
        "event", "audit_sequence", "webhook", "status", "attempts", "last_status_code",
        "last_error", "created_at", "delivered_at", "next_attempt_at",
    )  # fmt: skip
    list_filter = ("status", "event")
