"""Import requests: one row per import, written before its job is queued, and its event timeline."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from registry.models import ModelVersion


class Stage(models.TextChoices):
    """Pipeline stages, in order. ``imports.pipeline`` runs them; the job page shows them."""

    RESOLVE = "resolve", "Resolve revision"
    PREFLIGHT = "preflight", "Preflight checks"
    STREAM = "stream", "Download, check, scan and package"
    DOWNLOAD = "download", "Download"
    CHECK = "check", "Check digests"
    SCAN = "scan", "Scan pickle files"
    SIGN_MODEL = "sign_model", "Sign model files"
    PACKAGE = "package", "Package"
    ATTEST = "attest", "Sign provenance"
    STORE = "store", "Store"
    REGISTER = "register", "Register"


STAGE_ORDER: tuple[str, ...] = tuple(Stage.values)


class ImportRequest(models.Model):
    """One import of a Hub repo at a revision into the registry, from the web UI or the CLI."""

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    class Source(models.TextChoices):
        WEB = "web", "web"
        CLI = "cli", "command line"
        API = "api", "API"

    TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    repo_id = models.CharField(max_length=200)
    revision = models.CharField(max_length=200, default="main")
    commit = models.CharField(max_length=40, blank=True, help_text="pinned by the resolve stage")
    model_name = models.CharField(max_length=100)
    version = models.CharField(max_length=64)
    include_patterns = models.JSONField(default=list, blank=True)
    exclude_patterns = models.JSONField(default=list, blank=True)
    sign_key = models.CharField(max_length=200)
    upload_s3 = models.BooleanField(default=False)
    s3_bucket = models.CharField(max_length=200, blank=True)
    register = models.BooleanField(default=True)

    source = models.CharField(max_length=8, choices=Source.choices, default=Source.WEB)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor = models.CharField(
        max_length=300, help_text="who asked: user name, CI identity or OS user"
    )

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    stage = models.CharField(max_length=12, choices=Stage.choices, blank=True)
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=60, blank=True)
    state = models.JSONField(default=dict, blank=True, help_text="outputs of finished stages")
    result = models.JSONField(default=dict, blank=True)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    content_key = models.CharField(
        max_length=64,
        blank=True,
        help_text="sha256 of repo, commit and options, held while running or once succeeded",
    )
    job_id = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["repo_id", "commit"]),
            # The imports list: newest first, filtered by status or by who asked.
            models.Index(fields=["status", "-created_at"], name="import_status_created_idx"),
            models.Index(fields=["requested_by", "-created_at"], name="import_user_created_idx"),
        ]
        constraints = [
            # One import does the work for a given content; the others link to its result.
            models.UniqueConstraint(
                fields=["content_key"],
                condition=models.Q(status__in=["running", "succeeded"]) & ~models.Q(content_key=""),
                name="one_import_per_content",
            )
        ]

    def __str__(self) -> str:
        return (
            f"import #{self.pk} {self.repo_id}@{self.revision} -> {self.model_name} {self.version}"
        )

    def get_absolute_url(self) -> str:
        return reverse("imports:detail", args=[self.pk])

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL


class ImportEvent(models.Model):
    """One line of an import's timeline: a stage started, finished or failed, or a note."""

    class Kind(models.TextChoices):
        REQUESTED = "requested", "requested"
        STARTED = "started", "started"
        STAGE_STARTED = "stage_started", "stage started"
        STAGE_FINISHED = "stage_finished", "stage finished"
        STAGE_SKIPPED = "stage_skipped", "stage skipped (already done)"
        NOTE = "note", "note"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        RETRIED = "retried", "retried"
        CANCELLED = "cancelled", "cancelled"

    request = models.ForeignKey(ImportRequest, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(auto_now_add=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    stage = models.CharField(max_length=12, choices=Stage.choices, blank=True)
    message = models.TextField()
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.kind} {self.stage}: {self.message}"
